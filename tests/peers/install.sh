#!/usr/bin/env bash
# Installs the third-party programs the tests use as peers, pinned, into a cache folder: the MCP servers and
# the MCP client of the sandbox tests, the MCP conformance suite, the OpenAPI linter and the browser driver of the API document's tests (default:
# ~/.cache/xcore/mcp-peers). Fast when already there. Prints the folder.
set -euo pipefail
# The same order as the tests use: XCORE_PEERS_DIR; as root /var/cache (root's home is closed to the
# sandbox's user, who runs the servers); XDG_CACHE_HOME, HOME, then a folder in /tmp.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache; else default_cache=${XDG_CACHE_HOME:-${HOME:-/tmp/xcore-$(id -u)}/.cache}; fi
dir=${XCORE_PEERS_DIR:-$default_cache/xcore/mcp-peers}
packages=(
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/server-filesystem@2026.8.31"
  "@modelcontextprotocol/server-memory@2026.8.31"
  "@modelcontextprotocol/inspector-cli@1.0.3"
  "@modelcontextprotocol/conformance@0.1.13"
  "@redocly/cli@2.77.0"
  "playwright-core@1.65.2"
  "@dwmkerr/mock-llm@0.1.29"
)
stamp="$dir/.installed-$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  command -v npm >/dev/null || { echo "install.sh: npm is required (Debian: apt-get install npm)" >&2; exit 1; }
  mkdir -p "$dir"
  [[ -f "$dir/package.json" ]] || echo '{"name":"xcore-mcp-peers","private":true}' > "$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "${packages[@]}" >&2
  touch "$stamp"
fi
echo "$dir"
