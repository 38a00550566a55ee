#include "net/http_connection.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace xcore::inline v1::net {

Result<HttpTarget> parse_http_url(std::string_view url, std::string_view what) {
  HttpTarget t;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos)
    return Error{ErrorCode::invalid_argument, fmt::format("{} '{}': expected http://host[:port]/path or https://...", what, url)};
  const auto scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return Error{ErrorCode::invalid_argument, fmt::format("{} '{}': the scheme must be http or https", what, url)};
  auto rest = url.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos)
    return Error{ErrorCode::invalid_argument, fmt::format("{} '{}': expected a host (and no user info)", what, url)};
  t.origin = fmt::format("{}://{}", scheme, authority);
  t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.front() == '[') t.host = std::string(authority.substr(1, authority.find(']') - 1));
  else t.host = std::string(authority.substr(0, authority.find(':')));
  return t;
}

std::chrono::milliseconds time_left(std::chrono::system_clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::system_clock::now()));
}

void HttpConnection::interrupt() const {
  if (const int s = socket->load(); s >= 0) ::shutdown(s, SHUT_RDWR);
}

void HttpConnection::set_read_budget(std::chrono::milliseconds budget) const {
  http->set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(budget).count(), static_cast<long>((budget.count() % 1000) * 1000));
}

HttpConnection HttpConnectionPool::take() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  HttpConnection c;
  c.http = std::make_unique<httplib::Client>(target_.origin);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_socket_options([socket = c.socket](int s) { socket->store(s); });
  c->set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(connect_timeout_).count(),
                            static_cast<long>((connect_timeout_.count() % 1000) * 1000));
  if (!pinned_address_.empty()) c->set_hostname_addr_map({{target_.host, pinned_address_}});
  c->enable_server_certificate_verification(true);
  if (!ca_file_.empty()) c->set_ca_cert_path(ca_file_);
  return c;
}

void HttpConnectionPool::give(HttpConnection c) {
  std::lock_guard lock(mutex_);
  if (idle_.size() < 8) idle_.push_back(std::move(c));
}

}  // namespace xcore::inline v1::net
