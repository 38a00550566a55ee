#include "jsonrpc/rpc_peer.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace xcore::inline v1::jsonrpc {

RpcPeer::RpcPeer(int read_fd, int write_fd, Options options)
    : read_fd_(read_fd), write_fd_(write_fd), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), options_(options) {
  ::fcntl(read_fd_, F_SETFL, ::fcntl(read_fd_, F_GETFL) | O_NONBLOCK);
  ::fcntl(write_fd_, F_SETFL, ::fcntl(write_fd_, F_GETFL) | O_NONBLOCK);
}

RpcPeer::~RpcPeer() {
  close(Error{ErrorCode::unavailable, "connection shut down"});
  if (reader_.joinable()) reader_.join();
  {
    std::lock_guard lock(workers_mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& w : workers_) w.join();
  ::close(read_fd_);
  if (write_fd_ != read_fd_ && write_fd_ >= 0) ::close(write_fd_);
  ::close(wake_fd_);
}

void RpcPeer::close_output() {
  std::lock_guard lock(write_mutex_);
  if (write_fd_ < 0) return;
  if (write_fd_ == read_fd_) {
    ::shutdown(write_fd_, SHUT_WR);  // one socket both ways: only our direction ends
    return;
  }
  ::close(write_fd_);
  write_fd_ = -1;
}

void RpcPeer::start(RequestHandler on_request, NotificationHandler on_notification, ClosedHandler on_closed) {
  on_request_ = std::move(on_request);
  on_notification_ = std::move(on_notification);
  on_closed_ = std::move(on_closed);
  reader_ = std::thread([this] { reader_loop(); });
}

bool RpcPeer::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

void RpcPeer::close(Error why) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    close_reason_ = why;
  }
  std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  fail_all(why);
}

void RpcPeer::fail_all(const Error& why) {
  std::lock_guard lock(mutex_);
  for (auto& [id, p] : pending_) {
    p->done = true;
    p->result = why;
  }
  pending_.clear();
  answered_.notify_all();
}

namespace {

// A write to a pipe whose reader died raises SIGPIPE, which by default ends the whole host. A library
// must not change the process's signal dispositions, so this thread blocks SIGPIPE around its writes and
// takes back the one a failed write left pending (EPIPE is what the caller sees).
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeBlocked() {
    if (!blocked_) return;
    if (!was_pending_) {
      const timespec zero{0, 0};
      while (::sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false, blocked_ = false;
};

}  // namespace

Result<void> RpcPeer::write_line(const std::string& line, Clock::time_point deadline) {
  std::lock_guard lock(write_mutex_);
  if (write_fd_ < 0) return Error{ErrorCode::unavailable, "the connection's output is closed"};
  const SigpipeBlocked no_sigpipe;
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(write_fd_, line.data() + done, line.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      // The other side is gone: the connection is over for every caller, not only this one.
      Error gone{ErrorCode::plugin_crashed, fmt::format("write failed: {}", std::strerror(errno))};
      close(gone);
      return gone;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Error{ErrorCode::timeout, "the other side stopped reading"};
    pollfd p{write_fd_, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (p.revents & (POLLERR | POLLHUP)) {
      Error gone{ErrorCode::plugin_crashed, "the other side closed its input"};
      close(gone);
      return gone;
    }
  }
  return ok();
}

Result<json::value> RpcPeer::call(std::string_view method, const json::value& params, std::optional<Clock::time_point> deadline) {
  auto p = std::make_shared<Pending>();
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return close_reason_;
    id = next_id_++;
    pending_[id] = p;
  }
  auto write_deadline = Clock::now() + options_.write_timeout;
  if (deadline && *deadline < write_deadline) write_deadline = *deadline;
  if (auto w = write_line(request(json::value(id), method, params), write_deadline); !w) {
    std::lock_guard lock(mutex_);
    pending_.erase(id);
    return std::move(w).error();
  }
  std::unique_lock lock(mutex_);
  auto done = [&] { return p->done; };
  if (deadline) {
    if (!answered_.wait_until(lock, *deadline, done)) {
      pending_.erase(id);  // a late answer now finds no one and is dropped
      return Error{ErrorCode::timeout, fmt::format("no answer to '{}' before the deadline", method)};
    }
  } else {
    answered_.wait(lock, done);
  }
  return std::move(p->result);
}

Result<void> RpcPeer::notify(std::string_view method, const json::value& params) {
  if (closed()) return Error{ErrorCode::unavailable, "connection closed"};
  return write_line(notification(method, params), Clock::now() + options_.write_timeout);
}

void RpcPeer::reader_loop() {
  std::string buffer;
  std::size_t scanned = 0;  // bytes of `buffer` already searched for a newline: a long line is scanned once
  char chunk[64 * 1024];
  Error why{ErrorCode::plugin_crashed, "the other side closed the connection"};
  for (;;) {
    pollfd fds[2] = {{read_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      why = Error{ErrorCode::internal, fmt::format("poll failed: {}", std::strerror(errno))};
      break;
    }
    if (fds[1].revents) return;  // close() was called: it already failed the pending calls
    ssize_t n = ::read(read_fd_, chunk, sizeof(chunk));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t start = 0;
    bool broken = false;
    for (;;) {
      auto nl = buffer.find('\n', std::max(start, scanned));
      if (nl == std::string::npos) break;
      std::string_view line(buffer.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (line.size() > options_.max_line) {
        why = Error{ErrorCode::plugin_crashed, fmt::format("protocol error: a message of {} bytes exceeds the {} byte limit", line.size(), options_.max_line)};
        broken = true;
        break;
      }
      auto m = parse(line);
      if (!m) {
        why = Error{ErrorCode::plugin_crashed, fmt::format("protocol error: {}", m.error().message)};
        broken = true;
        break;
      }
      if (m->is_response()) {
        if (!m->id.is_int64() && !m->id.is_uint64()) continue;  // not one of ours
        std::uint64_t id = m->id.is_int64() ? static_cast<std::uint64_t>(m->id.get_int64()) : m->id.get_uint64();
        std::lock_guard lock(mutex_);
        auto it = pending_.find(id);
        if (it == pending_.end()) continue;  // late answer to a call that gave up: dropped
        it->second->done = true;
        if (m->kind == Message::Kind::result) it->second->result = std::move(m->result);
        else it->second->result = to_error(*m);
        pending_.erase(it);
        answered_.notify_all();
      } else if (m->kind == Message::Kind::notification) {
        if (on_notification_) on_notification_(m->method, m->params);
      } else {
        serve(std::move(*m));
      }
    }
    if (broken) break;
    buffer.erase(0, start);
    scanned = buffer.size();
    if (buffer.size() > options_.max_line) {
      why = Error{ErrorCode::plugin_crashed, fmt::format("protocol error: a message exceeds the {} byte limit", options_.max_line)};
      break;
    }
  }
  close(why);
  if (on_closed_) on_closed_(why);
}

void RpcPeer::serve(Message m) {
  std::unique_lock lock(workers_mutex_);
  work_.push_back(std::move(m));
  if (idle_workers_ > 0 || workers_.size() >= options_.max_workers) {
    work_ready_.notify_one();
    return;
  }
  try {
    workers_.emplace_back([this] { worker_loop(); });
  } catch (const std::system_error& e) {
    // Out of threads (a process limit the peer hit itself, say): a worker already running takes the job
    // later; with none at all, the job is answered with the error rather than ending the process.
    if (!workers_.empty()) return;
    Message job = std::move(work_.back());
    work_.pop_back();
    lock.unlock();
    (void)write_line(error(job.id, Error{ErrorCode::unavailable, fmt::format("cannot start a worker thread: {}", e.what())}),
                     Clock::now() + options_.write_timeout);
  }
}

void RpcPeer::worker_loop() {
  std::unique_lock lk(workers_mutex_);
  for (;;) {
    ++idle_workers_;
    work_ready_.wait(lk, [&] { return stopping_ || !work_.empty(); });
    --idle_workers_;
    if (stopping_) return;
    Message job = std::move(work_.front());
    work_.pop_front();
    lk.unlock();
    Result<json::value> r = Error{ErrorCode::not_found, fmt::format("unknown method '{}'", job.method)};
    try {
      if (on_request_) r = on_request_(job.method, job.params);
    } catch (const std::exception& e) {
      r = Error{ErrorCode::internal, e.what()};
    }
    std::string reply = r ? result(job.id, *r) : error(job.id, r.error());
    (void)write_line(reply, Clock::now() + options_.write_timeout);
    lk.lock();
  }
}

}  // namespace xcore::inline v1::jsonrpc
