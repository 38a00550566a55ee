#!/usr/bin/env bash
# Echo through a url: plugin (xcore's Streamable HTTP client, in a Manager) to the MCP project's reference
# server (server-everything in streamableHttp mode), beside the MCP project's own TypeScript SDK client calling
# the same server in the same run. One call at a time; REPS runs of CALLS calls each, medians. Prints a
# Markdown section for bench/RESULTS.md.
#   bench/remote_mcp.sh            (CALLS=2000 REPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${CALLS:-2000}
reps=${REPS:-3}
source bench/peers.sh
everything=$(peer_script @modelcontextprotocol/server-everything/dist/index.js)
port=$(free_port)
start_peer "$work/everything.out" "listening" env PORT="$port" node "$everything" streamableHttp
url="http://127.0.0.1:$port/mcp"
# The SDK resolves from the peers' node_modules: the script runs from there.
mkdir -p "$peers/run"
cp bench/sdk_echo.mjs "$peers/run/sdk_echo.mjs"
for r in $(seq "$reps"); do
  build/bench/bench_remote "$url" "$calls" >>"$work/xcore.jsonl"
  (cd "$peers/run" && node sdk_echo.mjs "$url" "$calls") >>"$work/sdk.jsonl"
done
python3 - "$work" "$calls" "$reps" <<'PY'
import json, statistics, sys
work, calls, reps = sys.argv[1], sys.argv[2], sys.argv[3]
def med(f, k): return statistics.median(json.loads(l)[k] for l in open(f"{work}/{f}.jsonl"))
x = {k: med("xcore", k) for k in ("calls_per_s", "p50_us", "p99_us")}
s = {k: med("sdk", k) for k in ("calls_per_s", "p50_us", "p99_us")}
print(f"""
## Echo through a url: plugin

`bench/remote_mcp.sh` (CALLS={calls} REPS={reps}): server-everything's `echo` over Streamable HTTP on loopback,
one call at a time, from xcore's url: client (a Manager with a remote plugin, `manager.call_tool`) and from the
MCP project's TypeScript SDK client (`client.callTool`) in the same run; medians of the runs.

| client | calls/s | p50 | p99 | ratio (calls/s) |
|---|---:|---:|---:|---:|
| xcore url: plugin | {x['calls_per_s']:,.0f} | {x['p50_us']/1000:.2f} ms | {x['p99_us']/1000:.2f} ms | {x['calls_per_s']/s['calls_per_s']:.2f}x |
| TypeScript SDK client (baseline) | {s['calls_per_s']:,.0f} | {s['p50_us']/1000:.2f} ms | {s['p99_us']/1000:.2f} ms | 1.00x |""")
PY
