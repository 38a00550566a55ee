#!/usr/bin/env bash
# Runs the MCP conformance suite's client scenarios that apply to a tools client against libxcore's MCP
# client (tests/conformance/client.cpp: a Manager with one url: plugin). Passes when the results are those
# of expected-failures.yaml exactly (its `client` list). The OAuth scenarios are not run: a url: plugin
# authenticates with a static bearer token from the secrets store.
#   tests/conformance/run_client.sh <conformance-client>
set -euo pipefail
client=$1
here=$(cd "$(dirname "$0")" && pwd)
peers=$(bash "$here/../peers/install.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
status=0
for scenario in initialize tools_call elicitation-sep1034-client-defaults sse-retry; do
  if ! "$peers/node_modules/.bin/conformance" client --command "$client" --scenario "$scenario" \
      --expected-failures "$here/expected-failures.yaml" >"$work/$scenario.report" 2>&1; then
    cat "$work/$scenario.report"
    status=1
  fi
  grep -E "^(Passed|Failed|Total)|checks|✓|✗" "$work/$scenario.report" | head -5 || true
done
[[ $status == 0 ]] && echo "conformance client: as expected"
exit $status
