#!/usr/bin/env bash
# Installs what is missing and builds a preset (default: "default"). The other scripts start with this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/install-deps.sh
preset=${1:-default}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
