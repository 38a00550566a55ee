#!/usr/bin/env bash
# Load on the reference server over loopback with wrk (keep-alive): POST /app/core/echo with a valid token,
# and GET /healthz in the same run as the baseline; then both again while bench/hold_connections.py holds
# IDLE idle keep-alive connections and SLOW slow-header ("slowloris") ones open from 20 other loopback
# addresses. Prints a Markdown section for bench/RESULTS.md.
#   bench/server_load.sh                 (DURATION=10 CONNECTIONS=32 THREADS=32 REPS=3 IDLE=1000 SLOW=100)
#   SERVER=/path/to/xcore-server bench/server_load.sh   another build (an older commit, say), same method
# Each repetition runs /healthz then echo; the table gives the medians, the ratio is that of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
connections=${CONNECTIONS:-32}
server_threads=${THREADS:-32}
reps=${REPS:-3}
idle=${IDLE:-1000}
slow=${SLOW:-100}
server=${SERVER:-build/reference-server/xcore-server}
work=$(mktemp -d)
server_pid=""
holder_pid=""
cleanup() {
  if [[ -n "$holder_pid" ]]; then kill "$holder_pid" 2>/dev/null || true; wait "$holder_pid" 2>/dev/null || true; fi
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

XCORE_ADMIN_PASSWORD=bench-password-1 "$server" --listen 127.0.0.1:0 --data-dir "$work/var" \
  --threads "$server_threads" --env-file /dev/null >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/out" | cut -d: -f3)
base="http://127.0.0.1:$port"
token=$(curl -sf "$base/api/v1/auth/login" -d '{"username":"admin","password":"bench-password-1"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

cp bench/wrk_report.lua "$work/report.lua"
cat "$work/report.lua" >"$work/echo.lua"
cat >>"$work/echo.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"message":"hello from wrk","n":42}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
LUA

run() {  # name, path, script
  TOKEN=$token wrk -t2 -c"$connections" -d"${duration}s" -s "$3" "$base$2" | grep '^RESULT' | sed "s/^RESULT/$1/"
}
: >"$work/runs"
for _ in $(seq "$reps"); do
  run healthz /healthz "$work/report.lua" >>"$work/runs"
  run echo /app/core/echo "$work/echo.lua" >>"$work/runs"
done

# The same two while idle and slow clients hold connections (the server's default limits: headers within
# 10 s, idle keep-alive 5 s, workers on demand).
hold_seconds=$((reps * 2 * duration + 15))
python3 bench/hold_connections.py "$port" --idle "$idle" --slow "$slow" --seconds "$hold_seconds" \
  --ready-file "$work/held" >"$work/hold" &
holder_pid=$!
for _ in $(seq 100); do [[ -e "$work/held" ]] && break; sleep 0.1; done
for _ in $(seq "$reps"); do
  run healthz_held /healthz "$work/report.lua" >>"$work/runs"
  run echo_held /app/core/echo "$work/echo.lua" >>"$work/runs"
done
held_threads=$(ls "/proc/$server_pid/task" | wc -l)
held_rss_mb=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")
wait "$holder_pid"
holder_pid=""
read -r _ idle_open slow_open slow_closed slow_median slow_max refused < <(grep '^RESULT' "$work/hold")
# Per route: the median of each column over the repetitions (requests and errors: summed).
medians() {
  python3 - "$work/runs" "$1" <<'PY'
import statistics, sys
rows = [l.split()[1:] for l in open(sys.argv[1]) if l.split()[0] == sys.argv[2]]
col = lambda i: [float(r[i]) for r in rows]
print(f"{statistics.median(col(0)):.0f} {statistics.median(col(1)):.3f} {statistics.median(col(2)):.3f} {sum(col(3)):.0f} {sum(col(4)):.0f}")
PY
}
read -r h_rps h_p50 h_p99 h_n h_err <<<"$(medians healthz)"
read -r e_rps e_p50 e_p99 e_n e_err <<<"$(medians echo)"
read -r hh_rps hh_p50 hh_p99 hh_n hh_err <<<"$(medians healthz_held)"
read -r eh_rps eh_p50 eh_p99 eh_n eh_err <<<"$(medians echo_held)"
ratio=$(python3 -c "print(f'{$e_rps / $h_rps:.2f}')")
held_ratio=$(python3 -c "print(f'{$eh_rps / $e_rps:.2f}')")
cat <<MD

## Reference server under load

Command: \`bench/server_load.sh\` (wrk -t2 -c$connections -d${duration}s, keep-alive, loopback; xcore-server --threads $server_threads;
the server and wrk share the machine's 2 CPUs; medians of $reps alternating repetitions). Target: >= 20,000 requests/s for
the echo action.

| route | requests/s | p50 | p99 | requests | errors |
|---|---:|---:|---:|---:|---:|
| \`POST /app/core/echo\` (JWT verified, user revocation checked, action through the C ABI, audited) | $e_rps | $e_p50 ms | $e_p99 ms | $e_n | $e_err |
| \`GET /healthz\` (baseline: no auth, no plugin) | $h_rps | $h_p50 ms | $h_p99 ms | $h_n | $h_err |
| \`POST /app/core/echo\` while $idle idle + $slow slow-header connections are held | $eh_rps | $eh_p50 ms | $eh_p99 ms | $eh_n | $eh_err |
| \`GET /healthz\` while $idle idle + $slow slow-header connections are held | $hh_rps | $hh_p50 ms | $hh_p99 ms | $hh_n | $hh_err |

Echo throughput is ${ratio}x the baseline's. Held connections: echo keeps ${held_ratio}x of its unloaded
throughput (target >= 0.5), \`/healthz\` p99 $hh_p99 ms (target <= 100 ms). The slow-header connections were
closed by the server $slow_closed times, each after a median of $slow_median s (longest $slow_max s; the header
deadline is 10 s from the first byte); at the end $idle_open idle and $slow_open slow connections were open,
$refused refused with 429; the server ran $held_threads threads in $held_rss_mb MB RSS while holding them.
MD
