#!/usr/bin/env bash
# Installs the Debian 12 packages xcore builds, tests and benchmarks with.
# Idempotent: when every package is present it only checks, in well under a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libboost1.81-dev libboost-json1.81-dev
  libfmt-dev libyaml-cpp-dev libvalijson-dev libcli11-dev
  libsqlitecpp-dev libsqlite3-dev libcpp-httplib-dev libbotan-2-dev libarchive-dev
  libseccomp-dev doctest-dev libbenchmark-dev wrk
  prometheus  # promtool: the metrics test checks /metrics with it
  chromium    # the /docs test drives the page in it (headless)
  iproute2    # ip netns: the node tests put a node in a network namespace of its own
  python3     # the shell example plugin's python_eval, and its tests
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

# A host running as root runs sandboxed plugins as this system user (no home, no shell, no login).
add_sandbox_user() {
  if [[ $(id -u) -eq 0 ]] && ! getent passwd xcore-sandbox >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group xcore-sandbox
  fi
}

if ((${#missing[@]} == 0)); then
  add_sandbox_user
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
add_sandbox_user
