// Splits text at a separator, keeping empty pieces: views into `s`, which must outlive them.
#pragma once

#include <string_view>
#include <vector>

namespace xcore::inline v1 {

inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (std::size_t start = 0;;) {
    auto end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

}  // namespace xcore::inline v1
