// '*' matches any run of characters; everything else matches itself. Used for permission patterns. The
// SDK's, so that plugins match as xcore does.
#pragma once

#include <xcore/glob.hpp>

namespace xcore::inline v1 {

using sdk::glob_match;

}  // namespace xcore::inline v1
