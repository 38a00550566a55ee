#!/usr/bin/env bash
# The package as its users get it. $1: the build tree (static libxcore), $2: the source tree.
#  1. static: installed to a prefix; an outside project builds a plugin and a host with find_package(xcore).
#  2. shared (-DBUILD_SHARED_LIBS=ON): libxcore.so.<major> with a SONAME, exporting xcore's symbols only;
#     installed, then the prefix is moved: the host still runs a sandboxed plugin, finding xcore-plugin-host
#     beside the library, and pkg-config still works.
#  3. add_subdirectory: xcore as a subproject.
#  The README's plugin and host snippets are extracted, built against the static install and run.
set -euo pipefail
build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
source "$here/../support/xcore_server.sh"
trap 'stop_server; rm -rf "$work"' EXIT
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
quiet() { "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log"; exit 1; }; }

# A copy of the staged plugin that runs sandboxed (the same binary).
sandboxed_copy() {
  mkdir -p "$2/hello"
  cp "$1/hello/libhello.so" "$2/hello/"
  sed 's/^id: hello$/id: hello\nmode: sandboxed/' "$1/hello/plugin.yaml" >"$2/hello/plugin.yaml"
}

echo "== static"
quiet cmake --install "$build_dir" --prefix "$work/static"
quiet cmake -S "$here" -B "$work/static-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/static" "${launcher[@]}"
quiet cmake --build "$work/static-build"
"$work/static-build/host" "$work/static-build/plugins"

echo "== the examples, each built on its own"
for example in plugins/core plugins/files plugins/shell plugins/audit plugins/wordcount host scheduler-host; do
  quiet cmake -S "$source_dir/examples/$example" -B "$work/examples/$example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/static" "${launcher[@]}"
  quiet cmake --build "$work/examples/$example"
done
"$work/examples/scheduler-host/scheduler-host" "$work/static/lib/xcore/plugins" --for 0 | grep -q "echo every 5 s: next at" \
  || { echo "the scheduler host did not schedule"; exit 1; }
echo "examples build on their own"
# The installed server, given no --plugins, finds the installed example plugins.
XCORE_ADMIN_PASSWORD=admin-password-1 start_server "$work/static/bin/xcore-server" "$work"
plugins=$(curl -sf "http://127.0.0.1:$port/api/v1/plugins" -H "Authorization: Bearer $(login admin-password-1)" || true)
stop_server
for id in core files audit wordcount; do
  grep -q "\"id\":\"$id\"" <<<"$plugins" || { echo "the installed server did not find plugin $id: $plugins"; cat "$work/server.log"; exit 1; }
done
echo "the installed server loads the installed example plugins"
[[ -f $work/static/lib/xcore/extra-plugins/shell/plugin.yaml ]] || { echo "the shell plugin is not installed apart"; exit 1; }
[[ -f $work/static/share/xcore/mcp-presets.yaml ]] || { echo "the MCP presets are not installed"; exit 1; }

echo "== the README's snippets, as written"
mkdir -p "$work/readme"
# Each block under a "<!-- file: NAME -->" line is written to NAME.
awk -v out="$work/readme" '
  /^<!-- file: .* -->$/ { name = $3; next }
  name != "" && /^```/ { if (writing) { writing = 0; name = "" } else { writing = 1 } ; next }
  writing { print > (out "/" name) }
' "$source_dir/README.md"
for f in plugin.yaml hello.cpp CMakeLists.txt host.cpp; do [[ -s $work/readme/$f ]] || { echo "README: no snippet for $f"; exit 1; }; done
quiet cmake -S "$work/readme" -B "$work/readme/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/static" "${launcher[@]}"
quiet cmake --build "$work/readme/build"
readme_out=$("$work/readme/build/host" "$work/readme/build/plugins" 2>"$work/readme.err") || { cat "$work/readme.err"; exit 1; }
grep -q '"greeting":"hello world"' <<<"$readme_out" || { echo "README host printed: $readme_out"; exit 1; }
grep -q '^after_call ' <<<"$readme_out" || { echo "README host saw no tool.after_call: $readme_out"; exit 1; }
echo "README snippets build and run"

echo "== shared, then moved"
shared_build=$build_dir/package-shared  # inside the build tree, so the compiler cache serves it
quiet cmake -S "$source_dir" -B "$shared_build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_SHARED_LIBS=ON \
  -DXCORE_BUILD_TESTS=OFF -DXCORE_BUILD_EXAMPLES=OFF -DXCORE_BUILD_BENCH=OFF -DXCORE_BUILD_SERVER=OFF -DXCORE_BUILD_TOOLS=OFF "${launcher[@]}"
quiet cmake --build "$shared_build"
quiet cmake --install "$shared_build" --prefix "$work/shared"
lib=$(ls "$work"/shared/lib*/libxcore.so.*.*.* | head -1)
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ $soname =~ ^libxcore\.so\.[0-9]+$ ]] || { echo "SONAME is '$soname'"; exit 1; }
foreign=$(nm -D --defined-only "$lib" | awk '{print $3}' | c++filt | grep -v -e 'xcore::' -e '^xcore_built_with_boost_' || true)
[[ -z $foreign ]] || { echo "libxcore.so exports symbols that are not xcore's:"; echo "$foreign" | head -20; exit 1; }
echo "$soname exports xcore's symbols only"
mv "$work/shared" "$work/moved"
quiet cmake -S "$here" -B "$work/shared-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/moved" "${launcher[@]}"
quiet cmake --build "$work/shared-build"
sandboxed_copy "$work/shared-build/plugins" "$work/sandboxed"
# Nowhere else to find the plugin host: not the environment, not the build trees.
mv "$shared_build/library/plugin-host/xcore-plugin-host" "$shared_build/library/plugin-host/xcore-plugin-host.away"
trap 'mv "$shared_build/library/plugin-host/xcore-plugin-host.away" "$shared_build/library/plugin-host/xcore-plugin-host" 2>/dev/null; rm -rf "$work"' EXIT
env -u XCORE_PLUGIN_HOST "$work/shared-build/host" "$work/sandboxed"
ldd "$work/shared-build/host" | grep -q "$work/moved/.*libxcore.so" || echo "(the host found libxcore.so through its RUNPATH)"
# pkg-config, from the moved prefix: its paths are relative to the .pc file.
pc_dir=$(dirname "$(ls "$work"/moved/lib*/pkgconfig/xcore.pc)")
# shellcheck disable=SC2046
g++ -o "$work/pc-host" "$here/host.cpp" $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs xcore) -Wl,-rpath,"$(dirname "$lib" | sed "s|$work/shared|$work/moved|")"
"$work/pc-host" "$work/shared-build/plugins"

echo "== add_subdirectory"
quiet cmake -S "$here/subdirectory" -B "$build_dir/package-subdirectory" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DXCORE_SOURCE_DIR="$source_dir" "${launcher[@]}"
quiet cmake --build "$build_dir/package-subdirectory"
"$build_dir/package-subdirectory/host" "$build_dir/package-subdirectory/plugins"
echo "package: ok"
