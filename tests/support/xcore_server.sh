# Sourced by the test scripts that drive a real xcore-server from the shell.
#   start_server SERVER WORK [ARGS...]   starts SERVER on a free loopback port with its data in WORK/data, its
#                                        output in WORK/server.out and its log in WORK/server.log; sets
#                                        server_pid and port (XCORE_* variables of the caller apply)
#   stop_server                          ends it (also safe when none was started)
#   login PASSWORD                       prints an access token of the default tenant's admin
server_pid=""
port=""

start_server() {
  local server=$1 work=$2
  shift 2
  "$server" --listen 127.0.0.1:0 --data-dir "$work/data" --env-file /nonexistent "$@" >"$work/server.out" 2>"$work/server.log" &
  server_pid=$!
  local _
  for _ in $(seq 200); do grep -q "listening on" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/server.out")
  [[ -n $port ]] || { echo "xcore-server did not start:"; cat "$work/server.log"; return 1; }
}

stop_server() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}

login() {
  curl -sf -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$1\",\"tenant\":\"default\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
