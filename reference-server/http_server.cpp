#include "http_server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

namespace xcore::server {

namespace {

using Clock = std::chrono::steady_clock;

// A worker above the kept number ends after this long without work.
constexpr auto kWorkerIdleExit = std::chrono::seconds(60);

thread_local ConnectionStream* t_current = nullptr;

int millis_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1LL << 30));
}

std::string address_text(const sockaddr_storage& a, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  port = 0;
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
    port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    port = ntohs(v6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {  // one client, one address, whichever socket family it came in on
      ::inet_ntop(AF_INET, &v6.sin6_addr.s6_addr[12], text, sizeof text);
    } else {
      ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
    }
  }
  return text;
}

std::string peer_address(int sock, int& port) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getpeername(sock, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    port = 0;
    return {};
  }
  return address_text(a, port);
}

std::string seconds_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{} s", d.count() / 1000) : fmt::format("{} ms", d.count());
}

}  // namespace

// ---- WorkerPool ------------------------------------------------------------------------------------------

WorkerPool::WorkerPool(std::size_t kept, std::size_t max, HttpCounters& counters)
    : kept_(std::max<std::size_t>(kept, 1)), max_(std::max(max, std::max<std::size_t>(kept, 1))), counters_(counters) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < kept_; ++i) spawn();
}

WorkerPool::~WorkerPool() { shutdown(); }

void WorkerPool::spawn() {
  try {
    std::thread([this] { work(); }).detach();
  } catch (const std::system_error&) {
    return;  // no thread to be had: the queued connection waits for a worker that is running
  }
  ++threads_;
  counters_.workers = static_cast<std::int64_t>(threads_);
  if (static_cast<std::int64_t>(threads_) > counters_.workers_peak) counters_.workers_peak = static_cast<std::int64_t>(threads_);
}

void WorkerPool::enqueue(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(task));
  ++counters_.queued;
  // Every waiting worker is promised to a queued connection already: one more is needed.
  if (idle_ < queue_.size() && threads_ < max_ && !shutdown_) spawn();
  wake_.notify_one();
}

void WorkerPool::shutdown() {
  std::unique_lock lock(mutex_);
  shutdown_ = true;
  wake_.notify_all();
  ended_.wait(lock, [&] { return threads_ == 0; });
}

void WorkerPool::work() {
  ::pthread_setname_np(::pthread_self(), "xcore-http");  // what top -H shows
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    const bool woken = wake_.wait_for(lock, kWorkerIdleExit, [&] { return shutdown_ || !queue_.empty(); });
    --idle_;
    if (!queue_.empty()) {
      auto task = std::move(queue_.front());
      queue_.pop_front();
      --counters_.queued;
      lock.unlock();
      ++counters_.workers_busy;
      task();
      --counters_.workers_busy;
      lock.lock();
      continue;
    }
    if (shutdown_ || (!woken && threads_ > kept_)) break;
  }
  --threads_;
  counters_.workers = static_cast<std::int64_t>(threads_);
  if (threads_ == 0) ended_.notify_all();
}

// ---- ConnectionStream ------------------------------------------------------------------------------------

ConnectionStream::ConnectionStream(int sock, int stop_fd, const HttpLimits& limits, std::string peer, int peer_port)
    : sock_(sock), stop_fd_(stop_fd), peer_(std::move(peer)), peer_port_(peer_port), limits_(limits) {}

void ConnectionStream::enter(Phase phase) {
  phase_ = phase;
  expired_ = false;
  if (phase == Phase::headers) {
    start_ = Clock::now();
    deadline_ = start_ + limits_.header_timeout;
  }
  else if (phase == Phase::body) deadline_ = Clock::now() + limits_.body_timeout;
}

int ConnectionStream::wait_readable() const {
  if (expired_) return 0;
  for (;;) {
    // A handler that reads (none does today) has the body's budget per read.
    const int timeout = phase_ == Phase::handler ? static_cast<int>(limits_.body_timeout.count()) : millis_until(deadline_);
    pollfd fds[2] = {{sock_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return -1;
    if (n == 0) {
      expired_ = true;
      return 0;
    }
    return 1;
  }
}

bool ConnectionStream::is_readable() const { return buffered_at_ < buffered_end_ || wait_readable() > 0; }

ssize_t ConnectionStream::read(char* ptr, size_t size) {
  // httplib reads a request line and headers a byte at a time: serve those from a buffer.
  if (buffered_at_ == buffered_end_) {
    // wait_for_request saw the request's first bytes arrive: no second poll for them.
    const bool ready = std::exchange(known_readable_, false);
    if (!ready && wait_readable() <= 0) return -1;
    if (size >= sizeof buffer_) {
      ssize_t n;
      do n = ::recv(sock_, ptr, size, 0);
      while (n < 0 && errno == EINTR);
      return n;
    }
    ssize_t n;
    do n = ::recv(sock_, buffer_, sizeof buffer_, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return n;
    buffered_at_ = 0;
    buffered_end_ = static_cast<std::size_t>(n);
  }
  const std::size_t take = std::min(size, buffered_end_ - buffered_at_);
  std::memcpy(ptr, buffer_ + buffered_at_, take);
  buffered_at_ += take;
  return static_cast<ssize_t>(take);
}

bool ConnectionStream::is_writable() const {
  for (;;) {
    pollfd fds[2] = {{sock_, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(limits_.write_timeout.count()));
    if (n < 0 && errno == EINTR) continue;
    return n > 0 && (fds[0].revents & POLLOUT) && !(fds[0].revents & (POLLERR | POLLHUP));
  }
}

ssize_t ConnectionStream::write(const char* ptr, size_t size) {
  std::size_t sent = 0;
  while (sent < size) {
    // Sent at once while the socket's buffer takes it; only a full buffer waits (at most write_timeout).
    const ssize_t n = ::send(sock_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!is_writable()) return sent ? static_cast<ssize_t>(sent) : -1;
      continue;
    }
    if (n <= 0) return sent ? static_cast<ssize_t>(sent) : -1;
    sent += static_cast<std::size_t>(n);
    wrote_ = true;
  }
  return static_cast<ssize_t>(sent);
}

void ConnectionStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = peer_;
  port = peer_port_;
}

void ConnectionStream::get_local_ip_and_port(std::string& ip, int& port) const {
  // httplib asks on every request; the answer is the connection's, read once.
  if (!local_known_) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) local_ = address_text(a, local_port_);
    local_known_ = true;
  }
  ip = local_;
  port = local_port_;
}

bool ConnectionStream::wait_for_request() {
  if (buffered_at_ < buffered_end_) return true;  // a pipelined request is here already
  phase_ = Phase::idle;
  expired_ = false;
  for (;;) {
    pollfd fds[2] = {{sock_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(limits_.idle_timeout.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) expired_ = true;
    known_readable_ = n > 0 && !(fds[1].revents & POLLIN) && (fds[0].revents & (POLLIN | POLLHUP | POLLERR));
    return known_readable_;
  }
}

// ---- HttpServer ------------------------------------------------------------------------------------------

HttpServer::HttpServer(HttpLimits limits, std::function<std::string(const Error&)> refusal_body)
    : limits_(limits), refusal_body_(std::move(refusal_body)), stop_fd_(::eventfd(0, EFD_CLOEXEC)) {
  new_task_queue = [this] { return new WorkerPool(limits_.threads, limits_.max_threads, counters_); };
  // What httplib says in Keep-Alive headers: the idle timeout this layer applies, and no request count
  // (the loop here serves any number; "max=5", httplib's default, makes some clients reconnect).
  set_keep_alive_timeout(std::max<time_t>(1, static_cast<time_t>((limits_.idle_timeout.count() + 999) / 1000)));
  set_keep_alive_max_count(1'000'000);
}

HttpServer::~HttpServer() {
  shutdown();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void HttpServer::shutdown() {
  if (!stopping_.exchange(true) && stop_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);  // stays readable: every connection's poll returns
  }
  stop();
}

bool HttpServer::widen_backlog() {
  const int sock = svr_sock_;
  return sock >= 0 && ::listen(sock, limits_.listen_backlog) == 0;  // on a listening socket: a new backlog
}

ConnectionStream* HttpServer::current() { return t_current; }

void HttpServer::refuse(int sock, int status, const Error& e) {
  const auto body = refusal_body_(e);
  const auto text = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}", status,
                                status == 408 ? "Request Timeout" : "Too Many Requests", body.size(),
                                status == 429 ? "Retry-After: 1\r\n" : "", body);
  (void)::send(sock, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // small: fits the socket's buffer
}

bool HttpServer::process_and_close_socket(int sock) {
  ++counters_.connections_total;
  ++counters_.connections_open;
  int port = 0;
  const auto address = peer_address(sock, port);
  bool admitted = true;
  if (limits_.max_connections_per_address > 0) {
    std::lock_guard lock(addresses_mutex_);
    auto& n = per_address_[address];
    if (n >= limits_.max_connections_per_address) admitted = false;
    else ++n;
  }
  bool ret = false;
  if (!admitted) {
    ++counters_.refused_per_address;
    refuse(sock, 429,
           Error{ErrorCode::resource_exhausted,
                 fmt::format("{} has {} connections open, the most one address may hold", address, limits_.max_connections_per_address),
                 fmt::format(R"({{"retry_after":1,"limit":{}}})", limits_.max_connections_per_address)});
  } else {
    ConnectionStream stream(sock, stop_fd_, limits_, address, port);
    t_current = &stream;
    while (!stopping_) {
      if (!stream.wait_for_request()) {
        if (stream.expired()) ++counters_.idle_closes;
        break;
      }
      stream.reset_for_request();
      stream.enter(ConnectionStream::Phase::headers);
      bool closed = false;
      ret = process_request(stream, /*close_connection=*/stopping_.load(), closed, nullptr);
      if (stream.expired()) {
        const bool headers = stream.phase() == ConnectionStream::Phase::headers;
        ++(headers ? counters_.header_timeouts : counters_.body_timeouts);
        // httplib answers a request cut off in its headers itself (our error handler makes that a 408);
        // one cut off in its request line it drops without a word.
        if (!stream.wrote())
          refuse(sock, 408,
                 Error{ErrorCode::timeout, fmt::format("the request's {} did not arrive within {}", headers ? "headers" : "body",
                                                       seconds_text(headers ? limits_.header_timeout : limits_.body_timeout))});
        break;
      }
      if (!ret || closed || stream.unusable) break;
    }
    t_current = nullptr;
    if (limits_.max_connections_per_address > 0) {
      std::lock_guard lock(addresses_mutex_);
      if (auto it = per_address_.find(address); it != per_address_.end() && --it->second == 0) per_address_.erase(it);
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  --counters_.connections_open;
  return ret;
}

}  // namespace xcore::server
