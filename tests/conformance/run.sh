#!/usr/bin/env bash
# Runs the MCP conformance suite's active server scenarios against the real xcore-server, started with the
# conformance setting (requests without a token reach only the fixture plugin's tools) and the fixture
# plugin. Passes when the results are those of expected-failures.yaml exactly (see that file).
#   tests/conformance/run.sh <xcore-server> <example plugins> <conformance plugins>
set -euo pipefail
server=$1
here=$(cd "$(dirname "$0")" && pwd)
peers=$(bash "$here/../peers/install.sh")
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
XCORE_ADMIN_PASSWORD=conformance-password-1 XCORE_MCP_CONFORMANCE=1 "$server" --listen 127.0.0.1:0 --data-dir "$work/data" \
  --plugins "$2" --plugins "$3" --env-file /nonexistent >"$work/out" 2>"$work/log" &
server_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/out")
[[ -n $port ]] || { cat "$work/log"; exit 1; }
cd "$work"
if "$peers/node_modules/.bin/conformance" server --url "http://127.0.0.1:$port/mcp" --expected-failures "$here/expected-failures.yaml" >"$work/report" 2>&1; then
  sed -n '/=== SUMMARY ===/,$p' "$work/report"
  echo "conformance: as expected"
else
  cat "$work/report"
  exit 1
fi
