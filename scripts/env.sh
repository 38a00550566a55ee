# Sourced by the scripts: compiler cache settings that let a fresh clone reuse earlier builds.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export CCACHE_NOHASHDIR=1
export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp/xcore-$(id -u)}/.cache}/ccache}"
