// An unordered_map keyed by std::string that can be searched with a string_view, without a temporary.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xcore::inline v1 {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

}  // namespace xcore::inline v1
