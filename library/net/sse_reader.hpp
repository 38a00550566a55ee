// The server-sent events format (text/event-stream), read as bytes arrive: used by the MCP client and the
// model providers' streaming answers.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace xcore::inline v1::net {

// One server-sent event's data, as the SSE format frames it: `feed` takes bytes as they arrive and calls
// `on_data` with each event's data (its data: lines joined), and `last_id` keeps the last id: field.
class SseReader {
 public:
  explicit SseReader(std::function<bool(std::string_view data)> on_data) : on_data_(std::move(on_data)) {}
  // False once on_data asked to stop.
  bool feed(std::string_view bytes);
  const std::string& last_id() const { return last_id_; }
  // The reconnection delay the server asked for (retry:), if it did.
  std::optional<std::chrono::milliseconds> retry() const { return retry_; }

 private:
  bool line(std::string_view l);
  std::function<bool(std::string_view)> on_data_;
  std::string pending_, data_, last_id_;
  std::optional<std::chrono::milliseconds> retry_;
  bool has_data_ = false;
};

}  // namespace xcore::inline v1::net
