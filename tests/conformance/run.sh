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
source "$here/../support/xcore_server.sh"
trap 'stop_server; rm -rf "$work"' EXIT
XCORE_ADMIN_PASSWORD=conformance-password-1 XCORE_MCP_CONFORMANCE=1 start_server "$server" "$work" --plugins "$2" --plugins "$3"
cd "$work"
if "$peers/node_modules/.bin/conformance" server --url "http://127.0.0.1:$port/mcp" --expected-failures "$here/expected-failures.yaml" >"$work/report" 2>&1; then
  sed -n '/=== SUMMARY ===/,$p' "$work/report"
  echo "conformance: as expected"
else
  cat "$work/report"
  exit 1
fi
