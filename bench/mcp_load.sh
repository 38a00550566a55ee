#!/usr/bin/env bash
# Echo through MCP over Streamable HTTP, with wrk over loopback (keep-alive): tools/call of core.echo at
# xcore-server's /mcp, beside the MCP project's reference server (server-everything in streamableHttp mode,
# from the peers cache: tests/peers/install.sh) calling its echo tool in the same run. One client, then 16.
# Each side gets one session (initialize + notifications/initialized) and then only tools/call. Prints a
# Markdown section for bench/RESULTS.md.
#   bench/mcp_load.sh            (DURATION=10 REPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
reps=${REPS:-3}
server=${SERVER:-build/reference-server/xcore-server}
source bench/peers.sh
everything=$(peer_script @modelcontextprotocol/server-everything/dist/index.js)

start_peer "$work/out" "listening on" env XCORE_ADMIN_PASSWORD=bench-password-1 "$server" --listen 127.0.0.1:0 --data-dir "$work/var" \
  --threads 32 --env-file /dev/null
xport=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/out" | cut -d: -f3)
token=$(curl -sf "http://127.0.0.1:$xport/api/v1/auth/login" -d '{"username":"admin","password":"bench-password-1"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# The reference server on a free port of its own.
eport=$(free_port)
start_peer "$work/everything.out" "listening" env PORT="$eport" node "$everything" streamableHttp

initialize() {  # url, extra curl args... -> the session id
  local url=$1
  shift
  local id
  id=$(curl -sf -D - -o /dev/null -X POST "$url" "$@" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' |
    tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
  curl -sf -o /dev/null -X POST "$url" "$@" -H "Mcp-Session-Id: $id" -H 'MCP-Protocol-Version: 2025-06-18' -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo "$id"
}
xsession=$(initialize "http://127.0.0.1:$xport/mcp" -H "Authorization: Bearer $token")
esession=$(initialize "http://127.0.0.1:$eport/mcp")

script() {  # tool, session, extra header line -> a wrk script
  cat <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"$1","arguments":{"message":"hello from wrk"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
wrk.headers["Mcp-Session-Id"] = "$2"
$3
LUA
  cat bench/wrk_report.lua
}
script core.echo "$xsession" "wrk.headers[\"Authorization\"] = \"Bearer $token\"" >"$work/xcore.lua"
script echo "$esession" "" >"$work/everything.lua"

# Each side answers the call wrk will repeat with a result, not an error (wrk counts HTTP statuses only).
check() {  # url, session, tool, extra curl args...
  local url=$1 session=$2 tool=$3
  shift 3
  curl -sf -X POST "$url" "$@" -H "Mcp-Session-Id: $session" -H 'MCP-Protocol-Version: 2025-06-18' -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$tool\",\"arguments\":{\"message\":\"hello from wrk\"}}}" |
    grep -q '"result"' || { echo "$url: $tool does not answer with a result" >&2; exit 1; }
}
check "http://127.0.0.1:$xport/mcp" "$xsession" core.echo -H "Authorization: Bearer $token"
check "http://127.0.0.1:$eport/mcp" "$esession" echo

: >"$work/runs"
for _ in $(seq "$reps"); do
  for c in 1 16; do
    t=$((c < 2 ? 1 : 2))
    wrk -t"$t" -c"$c" -d"${duration}s" -s "$work/everything.lua" "http://127.0.0.1:$eport/mcp" | grep '^RESULT' | sed "s/^RESULT/everything-$c/" >>"$work/runs"
    wrk -t"$t" -c"$c" -d"${duration}s" -s "$work/xcore.lua" "http://127.0.0.1:$xport/mcp" | grep '^RESULT' | sed "s/^RESULT/xcore-$c/" >>"$work/runs"
  done
done

python3 - "$work/runs" "$reps" "$duration" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, n, errors = line.split()
    runs.setdefault(name, []).append((float(rps), float(p50), float(p99), int(errors)))
med = lambda name, i: statistics.median(r[i] for r in runs[name])
print(f"### Echo through MCP Streamable HTTP (wrk, {sys.argv[3]} s runs, medians of {sys.argv[2]})\n")
print("| server | clients | calls/s | p50 ms | p99 ms | errors | calls/s vs server-everything |")
print("|---|---:|---:|---:|---:|---:|---:|")
for c in ("1", "16"):
    for side in ("everything", "xcore"):
        name = f"{side}-{c}"
        ratio = med(name, 0) / med(f"everything-{c}", 0)
        label = "server-everything (baseline)" if side == "everything" else "xcore-server /mcp"
        print(f"| {label} | {c} | {med(name,0):,.0f} | {med(name,1):.2f} | {med(name,2):.2f} | {sum(r[3] for r in runs[name])} | {ratio:.1f}x |")
PY
