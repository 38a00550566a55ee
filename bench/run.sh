#!/usr/bin/env bash
# Builds the release preset, runs every benchmark with repetitions, and writes bench/RESULTS.md:
# medians, each beside the baseline measured in the same run, and their ratio.
#   bench/run.sh            all benchmarks
#   REPS=9 bench/run.sh     more repetitions on a noisy machine
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh default >/dev/null
reps=${REPS:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bash tests/peers/install.sh >/dev/null  # server-everything for the MCP comparison
for b in bench_invoke bench_hooks bench_load bench_sandbox bench_scheduler; do
  echo "running $b ($reps repetitions)" >&2
  "build/bench/$b" --benchmark_repetitions="$reps" --benchmark_min_time=0.5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json --benchmark_out="$out/$b.json" --benchmark_out_format=json >/dev/null
done
python3 bench/report.py "$out" "bench/run.sh (REPS=$reps)" > bench/RESULTS.md
echo "running bench_tenants (10,000 tenants)" >&2
build/bench/bench_tenants --tenants 10000 --seconds 3 >> bench/RESULTS.md
echo "running bench/server_load.sh" >&2
bash bench/server_load.sh >> bench/RESULTS.md
echo "running bench/mcp_load.sh" >&2
bash bench/mcp_load.sh >> bench/RESULTS.md
echo "running bench/remote_mcp.sh" >&2
bash bench/remote_mcp.sh >> bench/RESULTS.md
echo "running bench/agents.sh" >&2
bash bench/agents.sh >> bench/RESULTS.md
cat bench/RESULTS.md
