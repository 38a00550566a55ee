# Sourced by the bench scripts that start peers (model and MCP servers from the peers cache, the reference
# server): a work folder, the processes started (ended on exit, by their id), free ports, and waiting for a
# process to say it is ready.
peers=${XCORE_PEERS_DIR:-/var/cache/xcore/mcp-peers}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A peer's entry script in the cache, or a message saying how to install it.
peer_script() {  # path below node_modules
  local script=$peers/node_modules/$1
  [[ -f $script ]] || { echo "$1 is not in $peers: run tests/peers/install.sh" >&2; exit 1; }
  echo "$script"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a command with its output in OUT and waits (10 s at most) until OUT holds PATTERN.
start_peer() {  # OUT PATTERN command...
  local out=$1 pattern=$2
  shift 2
  "$@" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q "$pattern" "$out" 2>/dev/null && return 0; sleep 0.1; done
  echo "$1 did not say '$pattern' within 10 s: $(cat "$out")" >&2
  exit 1
}
