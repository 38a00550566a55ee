#include "nodes/ws_rpc.hpp"

#include <fmt/format.h>


namespace xcore::inline v1::nodes {

std::shared_ptr<WsRpc> WsRpc::open(std::shared_ptr<net::WsLink> link, Handlers handlers, std::uint32_t unsolicited_per_second) {
  std::shared_ptr<WsRpc> rpc(new WsRpc(std::move(link)));
  rpc->handlers_ = std::move(handlers);
  rpc->unsolicited_rate_ = unsolicited_per_second;
  rpc->tokens_ = unsolicited_per_second;
  std::weak_ptr<WsRpc> weak = rpc;
  rpc->link_->start(
      [weak](std::string text) {
        if (auto self = weak.lock()) self->on_message(std::move(text));
      },
      [weak](const Error& why) {
        if (auto self = weak.lock()) self->on_closed(why);
      });
  return rpc;
}

void WsRpc::call_async(std::string_view method, const json::value& params, Clock::time_point deadline, Callback done) {
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    if (closed_why_) {
      auto why = *closed_why_;
      done(why);
      return;
    }
    id = next_id_++;
    pending_.emplace(id, Pending{deadline, std::move(done)});
  }
  if (auto sent = link_->send(jsonrpc::request(json::value(id), method, params)); !sent)
    if (auto cb = take(id)) (*cb)(sent.error());
}

Result<json::value> WsRpc::call(std::string_view method, const json::value& params, Clock::time_point deadline, std::stop_token cancel) {
  struct Wait {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<Result<json::value>> answer;
  };
  auto wait = std::make_shared<Wait>();
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    if (closed_why_) return *closed_why_;
    id = next_id_++;
    pending_.emplace(id, Pending{Clock::time_point::max(), [wait](Result<json::value> r) {
                                   std::lock_guard l(wait->mutex);
                                   wait->answer = std::move(r);
                                   wait->cv.notify_all();
                                 }});
  }
  if (auto sent = link_->send(jsonrpc::request(json::value(id), method, params)); !sent) {
    take(id);
    return sent.error();
  }
  std::stop_callback wake(cancel, [wait] {
    std::lock_guard l(wait->mutex);
    wait->cv.notify_all();
  });
  std::unique_lock l(wait->mutex);
  wait->cv.wait_until(l, deadline, [&] { return wait->answer.has_value() || cancel.stop_requested(); });
  if (wait->answer) return std::move(*wait->answer);
  l.unlock();
  const bool cancelled = cancel.stop_requested();
  if (!take(id)) {
    // The answer arrived as we gave up: it is ours after all.
    l.lock();
    wait->cv.wait(l, [&] { return wait->answer.has_value(); });
    return std::move(*wait->answer);
  }
  (void)notify("notifications/cancelled", json::object{{"requestId", id}, {"reason", cancelled ? "cancelled by the caller" : "the caller's deadline passed"}});
  if (cancelled) return Error{ErrorCode::cancelled, fmt::format("{} was cancelled", method)};
  return Error{ErrorCode::timeout, fmt::format("{} got no answer from {} in time", method, link_->remote_address())};
}

Result<void> WsRpc::notify(std::string_view method, const json::value& params) {
  return link_->send(jsonrpc::notification(method, params));
}

Result<void> WsRpc::respond(const json::value& id, const Result<json::value>& answer) {
  return link_->send(answer ? jsonrpc::result(id, *answer) : jsonrpc::error(id, answer.error()));
}

void WsRpc::expire(Clock::time_point now) {
  std::vector<Callback> late;
  {
    std::lock_guard lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        late.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& cb : late) cb(Error{ErrorCode::timeout, fmt::format("{} did not answer in time", link_->remote_address())});
}

void WsRpc::close(std::string_view reason) { link_->close(reason); }

std::optional<WsRpc::Callback> WsRpc::take(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  auto cb = std::move(it->second.done);
  pending_.erase(it);
  return cb;
}

void WsRpc::on_message(std::string text) {
  last_message_.store(std::chrono::system_clock::now().time_since_epoch().count());
  auto parsed = jsonrpc::parse(text);
  if (!parsed) {
    // A peer that does not speak the protocol is not talked to any further.
    link_->close(fmt::format("not JSON-RPC: {}", parsed.error().message));
    return;
  }
  auto& m = *parsed;
  std::optional<Callback> cb;
  if (m.is_response() && (m.id.is_uint64() || m.id.is_int64())) cb = take(m.id.is_uint64() ? m.id.get_uint64() : static_cast<std::uint64_t>(m.id.get_int64()));
  if (!cb && !unsolicited_allowed()) {
    link_->close(fmt::format("more than {} messages a second that answer nothing asked", unsolicited_rate_));
    return;
  }
  if (m.is_response()) {
    if (!cb) return;  // its caller gave up (or it answers nothing): dropped
    if (m.kind == jsonrpc::Message::Kind::result)
      (*cb)(std::move(m.result));
    else
      (*cb)(jsonrpc::to_error(m));
    return;
  }
  if (m.kind == jsonrpc::Message::Kind::request) {
    if (handlers_.on_request)
      handlers_.on_request(std::move(m));
    else
      (void)respond(m.id, jsonrpc::method_not_found(m.method));
    return;
  }
  if (handlers_.on_notification) handlers_.on_notification(m.method, m.params);
}

bool WsRpc::unsolicited_allowed() {
  if (unsolicited_rate_ == 0) return true;
  const auto now = Clock::now();
  const double rate = unsolicited_rate_;
  tokens_ = std::min(rate, tokens_ + std::chrono::duration<double>(now - refilled_).count() * rate);
  refilled_ = now;
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

void WsRpc::on_closed(const Error& why) {
  std::map<std::uint64_t, Pending> failing;
  {
    std::lock_guard lock(mutex_);
    closed_why_ = why;
    failing.swap(pending_);
  }
  for (auto& [id, p] : failing) p.done(why);
  if (handlers_.on_closed) handlers_.on_closed(why);
}

}  // namespace xcore::inline v1::nodes
