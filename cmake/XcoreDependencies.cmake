# Third-party packages, all from Debian 12 (scripts/install-deps.sh installs them).
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)
# TLS for the node links (wss), beside cpp-httplib's https.
find_package(OpenSSL REQUIRED)
find_path(VALIJSON_INCLUDE_DIR valijson/validator.hpp REQUIRED)
# cpp-httplib has no CMake config: pkg-config, whose target carries the -D flags it was built with (https
# among them). libxcore's MCP client uses it; the reference server its server too.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
