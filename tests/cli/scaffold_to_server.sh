#!/usr/bin/env bash
# A plugin author's whole path with the installed package, as the README tells it: xcore new plugin ->
# build and test -> validate -> keygen, pack, sign, verify -> install into a server's plugin folder -> the
# server (refusing unsigned plugins) runs it trusted -> xcore call reaches its tool through the server.
set -euo pipefail
build_dir=$1
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
xcore=$work/prefix/bin/xcore
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cd "$work"

for lang in cpp c; do
  name=greeter-$lang
  flags=(--lang "$lang")
  [[ $lang == c ]] && flags+=(--sandboxed)
  "$xcore" new plugin "$name" "${flags[@]}" >/dev/null
  cmake -S "$name" -B "$name/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >/dev/null
  cmake --build "$name/build" >/dev/null
  ctest --test-dir "$name/build" --output-on-failure >/dev/null
  "$xcore" validate "$name/build/plugins/$name"
done

"$xcore" keygen signer >/dev/null
"$xcore" pack greeter-cpp/build/plugins/greeter-cpp -o . >/dev/null
"$xcore" sign greeter-cpp-0.1.0.xpkg --key signer.key
"$xcore" verify greeter-cpp-0.1.0.xpkg --key signer.pub
mkdir plugins
"$xcore" install greeter-cpp-0.1.0.xpkg --into plugins --key signer.pub
# Unsigned: refused by the server below, by name.
cp -r greeter-c/build/plugins/greeter-c plugins/

XCORE_ADMIN_PASSWORD=admin-password-1 XCORE_UNSIGNED_PLUGINS=refuse "$work/prefix/bin/xcore-server" --listen 127.0.0.1:0 \
  --data-dir data --plugins plugins --trusted-key signer.pub --env-file /nonexistent >server.out 2>server.log &
server_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" server.out 2>/dev/null && break
  sleep 0.1
done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' server.out)
[[ -n $port ]] || { cat server.log; exit 1; }
token=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"admin","password":"admin-password-1","tenant":"default"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || { echo "login failed"; cat server.log; exit 1; }
answer=$("$xcore" call greeter-cpp.greet name=server --server "http://127.0.0.1:$port" --token "$token")
[[ $answer == "Hello, server!" ]] || { echo "unexpected answer: $answer"; exit 1; }
refused=$(curl -sf "http://127.0.0.1:$port/api/v1/plugins/greeter-c" -H "Authorization: Bearer $token")
grep -q "plugin 'greeter-c' is not signed" <<<"$refused" || { echo "unsigned plugin not refused: $refused"; exit 1; }
echo "scaffold to server: ok"
