#include "net/sse_reader.hpp"

namespace xcore::inline v1::net {

bool SseReader::feed(std::string_view bytes) {
  pending_.append(bytes);
  std::size_t start = 0;
  for (auto end = pending_.find('\n', start); end != std::string::npos; end = pending_.find('\n', start)) {
    std::string_view l(pending_.data() + start, end - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    start = end + 1;
    if (!line(l)) {
      pending_.erase(0, start);
      return false;
    }
  }
  pending_.erase(0, start);
  return true;
}

bool SseReader::line(std::string_view l) {
  if (l.empty()) {  // an event ends: dispatch what its data lines said
    if (!has_data_) return true;
    has_data_ = false;
    std::string data = std::move(data_);
    data_.clear();
    return on_data_(data);
  }
  if (l.front() == ':') return true;  // a comment (keep-alive)
  const auto colon = l.find(':');
  const auto field = l.substr(0, colon);
  auto value = colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  } else if (field == "id") {
    last_id_ = std::string(value);
  } else if (field == "retry" && !value.empty() && value.size() < 10 && value.find_first_not_of("0123456789") == std::string_view::npos) {
    retry_ = std::chrono::milliseconds(std::stol(std::string(value)));
  }
  return true;
}

}  // namespace xcore::inline v1::net
