#!/usr/bin/env bash
# Agent step overhead: a run of 5 tool steps against mock-llm (an OpenAI-compatible server answering by
# rules), beside the same 6 HTTP requests sent directly and 5 direct tool invocations, interleaved in the
# same process; xcore's own share is what the run costs beyond those. REPS processes of RUNS runs each,
# medians. Prints a Markdown section for bench/RESULTS.md.
#   bench/agents.sh            (RUNS=200 REPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-200}
reps=${REPS:-3}
source bench/peers.sh
mock=$(peer_script @dwmkerr/mock-llm/dist/main.js)
# A tool call while fewer than 5 results came back, then the answer.
cat > "$work/rules.yaml" <<'YAML'
rules:
  - path: "/v1/chat/completions"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":"done"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":2}}'
  - path: "/v1/chat/completions"
    match: "length(body.messages[?role=='tool']) < `5`"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c{{jmes request length(body.messages)}}","type":"function","function":{"name":"add","arguments":"{\"a\":1,\"b\":2}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":50,"completion_tokens":9}}'
YAML
port=$(free_port)
start_peer "$work/mock.out" "server running" env PORT="$port" HOST=127.0.0.1 node "$mock" --config "$work/rules.yaml"
for r in $(seq "$reps"); do build/bench/bench_agents "http://127.0.0.1:$port/v1" "$runs" >>"$work/agents.jsonl"; done
python3 - "$work" "$runs" "$reps" <<'PY'
import json, statistics, sys
work, runs, reps = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(f"{work}/agents.jsonl")]
med = lambda k: statistics.median(r[k] for r in rows)
a, h, t, c, l = med("agent_run_us"), med("direct_http_us"), med("direct_tools_us"), med("model_client_us"), med("loop_us")
own = a - h - t
print(f"""
## Agent step overhead

`bench/agents.sh` (RUNS={runs} REPS={reps}): an agent run of 5 tool steps against mock-llm (6 chat-completion
requests on loopback), beside the same 6 requests sent directly over one keep-alive connection and 5 direct
invocations of the same tool, interleaved in one process; medians of the processes' medians. The last two rows
split xcore's share: the same 6 requests through xcore's model client alone (serialising the conversation,
parsing the answers), and the run's time outside the model client (the loop: tools, transcript, store).

| what | time per run | share of the agent run |
|---|---:|---:|
| agent run (5 tool steps) | {a/1000:.2f} ms | 100% |
| the same 6 requests, direct (baseline) | {h/1000:.2f} ms | {100*h/a:.1f}% |
| 5 tool invocations, direct (baseline) | {t/1000:.3f} ms | {100*t/a:.2f}% |
| xcore's own share (the rest) | {own/1000:.2f} ms | {100*own/a:.1f}% |
| of which: model client beyond direct HTTP | {(c-h)/1000:.2f} ms | {100*(c-h)/a:.1f}% |
| of which: the loop, outside the model client | {l/1000:.2f} ms | {100*l/a:.1f}% |""")
PY
