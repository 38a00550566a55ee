#!/usr/bin/env bash
# Installs the Debian 12 packages xcore builds, tests and benchmarks with.
# Idempotent: when every package is present it only checks, in well under a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libboost1.81-dev libboost-json1.81-dev
  libfmt-dev libyaml-cpp-dev libvalijson-dev libcli11-dev
  libsqlitecpp-dev libsqlite3-dev libcpp-httplib-dev libbotan-2-dev
  libseccomp-dev doctest-dev libbenchmark-dev
)

# The sandbox tests load third-party MCP servers from the npm registry: they need node and npm. Use the
# machine's own when present (a newer one than Debian's may be installed), else Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  # dpkg-query is the cheap check; a half-installed package counts as missing.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Never an unversioned libboost-*-dev: it would pull another Boost and remove 1.81.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
