# Third-party packages, all from Debian 12 (scripts/install-deps.sh installs them).
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)
find_path(VALIJSON_INCLUDE_DIR valijson/validator.hpp REQUIRED)
