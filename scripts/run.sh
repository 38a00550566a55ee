#!/usr/bin/env bash
# Sets everything up, builds, and runs the example host: it loads the example plugins and calls their tools.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh default
mkdir -p var/files
echo "hello from xcore" > var/files/hello.txt
exec build/examples/host/example-host build/plugins var/files
