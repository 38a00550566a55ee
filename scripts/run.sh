#!/usr/bin/env bash
# Sets everything up, builds, and runs xcore-server on 127.0.0.1:8080 with the example plugins, keeping its
# database, keys and plugin data in ./var. The first start creates the user 'admin' and prints its password
# (or takes it from XCORE_ADMIN_PASSWORD). Flags are passed on, e.g. scripts/run.sh --listen 127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh default
exec build/reference-server/xcore-server --listen 127.0.0.1:8080 --data-dir var "$@"
