#!/usr/bin/env bash
# A plugin author's whole path with the installed package, as the README tells it: xcore new plugin ->
# build and test -> validate -> keygen, pack, sign, verify -> install into a server's plugin folder -> the
# server (refusing unsigned plugins) runs it trusted -> xcore call reaches its tool through the server.
set -euo pipefail
build_dir=$1
work=$(mktemp -d)
source "$(dirname "$0")/../support/xcore_server.sh"
trap 'stop_server; rm -rf "$work"' EXIT
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

XCORE_ADMIN_PASSWORD=admin-password-1 XCORE_UNSIGNED_PLUGINS=refuse start_server "$work/prefix/bin/xcore-server" "$work" \
  --plugins plugins --trusted-key signer.pub
token=$(login admin-password-1)
[[ -n $token ]] || { echo "login failed"; cat server.log; exit 1; }
answer=$("$xcore" call greeter-cpp.greet name=server --server "http://127.0.0.1:$port" --token "$token")
[[ $answer == "Hello, server!" ]] || { echo "unexpected answer: $answer"; exit 1; }
refused=$(curl -sf "http://127.0.0.1:$port/api/v1/plugins/greeter-c" -H "Authorization: Bearer $token")
grep -q "plugin 'greeter-c' is not signed" <<<"$refused" || { echo "unsigned plugin not refused: $refused"; exit 1; }
echo "scaffold to server: ok"
