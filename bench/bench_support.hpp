#pragma once

#include <xcore/xcore.hpp>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <string>

namespace xcore_bench {

// About 100 bytes of arguments, as an agent's typical small tool call.
inline const char* kArgs =
    R"({"message":"hello world, this is a benchmark payload","count":42,"tags":["a","b","c"],"nested":{"k":true}})";

inline std::filesystem::path example_plugins() { return XCORE_EXAMPLE_PLUGIN_DIR; }
inline std::filesystem::path test_plugins() { return XCORE_TEST_PLUGIN_DIR; }

}  // namespace xcore_bench
