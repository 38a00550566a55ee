#include "mcp_sessions.hpp"

#include <vector>

#include <fmt/format.h>

#include "crypto.hpp"

namespace xcore::server {

std::string ClientRequests::open() {
  std::lock_guard lock(mutex_);
  auto id = fmt::format("xcore-{}", next_++);
  waiting_.emplace(id, std::nullopt);
  return id;
}

Result<json::value> ClientRequests::wait(const std::string& id, std::chrono::system_clock::time_point deadline, std::stop_token cancel) {
  std::unique_lock lock(mutex_);
  const bool answered = answered_.wait_until(lock, cancel, deadline, [&] {
    auto it = waiting_.find(id);
    return it == waiting_.end() || it->second.has_value();
  });
  auto node = waiting_.extract(id);
  if (!answered || node.empty() || !node.mapped()) {
    if (cancel.stop_requested()) return Error{ErrorCode::cancelled, fmt::format("the call was cancelled while it waited for the client's answer to {}", id)};
    return Error{ErrorCode::timeout, fmt::format("the client did not answer request {} in time", id)};
  }
  const auto& m = *node.mapped();
  if (m.kind == jsonrpc::Message::Kind::error) return jsonrpc::to_error(m);
  return m.result;
}

bool ClientRequests::answer(const jsonrpc::Message& response) {
  if (!response.id.is_string()) return false;  // ours are strings
  {
    std::lock_guard lock(mutex_);
    auto it = waiting_.find(std::string(response.id.get_string()));
    if (it == waiting_.end() || it->second) return false;
    it->second = response;
  }
  answered_.notify_all();
  return true;
}

std::string McpSessions::open(const std::string& tenant, const std::string& principal, const std::string& protocol,
                              std::shared_ptr<mcp::ClientSession> client) {
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  sweep(now);
  // Bounded per principal: a client that initializes in a loop replaces its own sessions, nobody else's.
  std::vector<std::unordered_map<std::string, Session>::iterator> mine;
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
    if (it->second.tenant == tenant && it->second.principal == principal) mine.push_back(it);
  while (!mine.empty() && mine.size() >= per_principal_) {
    auto oldest = std::min_element(mine.begin(), mine.end(), [](auto a, auto b) { return a->second.last_used < b->second.last_used; });
    sessions_.erase(*oldest);
    mine.erase(oldest);
  }
  std::string id = random_token(24);
  sessions_[id] = Session{tenant, principal, protocol, now, std::move(client), std::make_shared<ClientRequests>()};
  return id;
}

std::optional<McpSessions::Session> McpSessions::use(const std::string& id, const std::string& tenant, const std::string& principal) {
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (now - it->second.last_used > idle_) {
    sessions_.erase(it);
    return std::nullopt;
  }
  if (it->second.tenant != tenant || it->second.principal != principal) return std::nullopt;
  it->second.last_used = now;
  return it->second;
}

bool McpSessions::close(const std::string& id, const std::string& tenant, const std::string& principal) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.tenant != tenant || it->second.principal != principal) return false;
  sessions_.erase(it);
  if (auto s = streams_.find(id); s != streams_.end()) s->second->close();  // its stream ends with it
  return true;
}

void McpSessions::Stream::push(std::string line) {
  {
    std::lock_guard lock(mutex);
    if (closed || lines.size() >= 1024) return;  // a stream that stopped reading loses what it would not take
    lines.push_back(std::move(line));
  }
  cv.notify_all();
}

void McpSessions::Stream::close() {
  {
    std::lock_guard lock(mutex);
    closed = true;
  }
  cv.notify_all();
}

std::deque<std::string> McpSessions::Stream::take(std::chrono::milliseconds idle) {
  std::unique_lock lock(mutex);
  cv.wait_for(lock, idle, [&] { return closed || !lines.empty(); });
  std::deque<std::string> out;
  out.swap(lines);
  return out;
}

Result<std::shared_ptr<McpSessions::Stream>> McpSessions::open_stream(const std::string& id, const std::string& tenant, const std::string& principal) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.tenant != tenant || it->second.principal != principal)
    return Error{ErrorCode::not_found, "no such MCP session (it ended or expired): initialize again"};
  if (streams_.contains(id)) return Error{ErrorCode::conflict, "this session's stream is already open"};
  if (streams_.size() >= max_streams_)
    return Error{ErrorCode::resource_exhausted, fmt::format("the server holds {} MCP streams, its limit (mcp.max_streams): try again later", max_streams_)};
  auto s = std::make_shared<Stream>();
  streams_.emplace(id, s);
  return s;
}

void McpSessions::end_stream(const std::string& id, const std::shared_ptr<Stream>& stream) {
  std::lock_guard lock(mutex_);
  if (auto it = streams_.find(id); it != streams_.end() && it->second == stream) streams_.erase(it);
}

void McpSessions::broadcast(const std::string& tenant, const std::string& line) {
  std::vector<std::shared_ptr<Stream>> to;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, s] : streams_)
      if (auto it = sessions_.find(id); it != sessions_.end() && it->second.tenant == tenant) to.push_back(s);
  }
  for (const auto& s : to) s->push(line);
}

void McpSessions::close_streams() {
  std::lock_guard lock(mutex_);
  for (const auto& [id, s] : streams_) s->close();
}

std::size_t McpSessions::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::stop_token McpSessions::start_request(const std::string& session, const std::string& request_id) {
  std::lock_guard lock(mutex_);
  return in_flight_[{session, request_id}].get_token();
}

void McpSessions::end_request(const std::string& session, const std::string& request_id) {
  std::lock_guard lock(mutex_);
  in_flight_.erase({session, request_id});
}

bool McpSessions::cancel_request(const std::string& session, const std::string& request_id) {
  std::lock_guard lock(mutex_);
  auto it = in_flight_.find({session, request_id});
  if (it == in_flight_.end()) return false;
  it->second.request_stop();
  return true;
}

void McpSessions::sweep(Clock::time_point now) {
  if (now - last_sweep_ < std::chrono::seconds(60)) return;
  last_sweep_ = now;
  std::erase_if(sessions_, [&](const auto& e) { return now - e.second.last_used > idle_; });
}

}  // namespace xcore::server
