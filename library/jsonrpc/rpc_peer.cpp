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

#include "core/thread_name.hpp"

namespace xcore::inline v1::jsonrpc {

RpcPeer::RpcPeer(int read_fd, int write_fd, Options options)
    : read_fd_(read_fd), write_fd_(write_fd), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      kick_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), options_(options) {
  ::fcntl(read_fd_, F_SETFL, ::fcntl(read_fd_, F_GETFL) | O_NONBLOCK);
  ::fcntl(write_fd_, F_SETFL, ::fcntl(write_fd_, F_GETFL) | O_NONBLOCK);
}

RpcPeer::~RpcPeer() {
  close(Error{ErrorCode::unavailable, "connection shut down"});
  {
    std::lock_guard lock(workers_mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  if (reader_.joinable()) reader_.join();
  for (auto& w : workers_) w.join();
  ::close(read_fd_);
  if (write_fd_ != read_fd_ && write_fd_ >= 0) ::close(write_fd_);
  ::close(wake_fd_);
  ::close(kick_fd_);
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
  reader_ = std::thread([this] { pool_loop(); });
  name_thread(reader_, options_.thread_name);
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
  lead_until(*p, deadline);
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

// Reads until at least one request has arrived (answers and notifications are dispatched on the way),
// or, for a caller that leads, its own answer; or until asked to yield, the deadline, or the end of the
// connection. Only the thread that leads calls it: the buffer is the leader's.
RpcPeer::ReadEnd RpcPeer::read_messages(std::vector<Message>& requests, const Pending* mine, std::optional<Clock::time_point> until) {
  char chunk[64 * 1024];
  Error why{ErrorCode::plugin_crashed, "the other side closed the connection"};
  for (;;) {
    if (mine) {  // answered already, perhaps by the reader that stepped aside for us
      std::lock_guard lock(mutex_);
      if (mine->done) return ReadEnd::done;
    }
    pollfd fds[3] = {{read_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {mine ? -1 : kick_fd_, POLLIN, 0}};
    int timeout = -1;
    if (until) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now()).count();
      if (left <= 0) return ReadEnd::timeout;
      timeout = static_cast<int>(std::min<long long>(left, 1000));
    }
    int ready = ::poll(fds, 3, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      why = Error{ErrorCode::internal, fmt::format("poll failed: {}", std::strerror(errno))};
      break;
    }
    if (ready == 0) continue;
    if (fds[1].revents) return ReadEnd::ended;  // close() was called: it already failed the pending calls
    if (fds[2].revents) {
      std::uint64_t n = 0;
      (void)!::read(kick_fd_, &n, sizeof n);
      return ReadEnd::yielded;  // a caller wants to read for itself
    }
    ssize_t n = ::read(read_fd_, chunk, sizeof(chunk));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    std::size_t start = 0;
    bool broken = false;
    for (;;) {
      auto nl = buffer_.find('\n', std::max(start, scanned_));
      if (nl == std::string::npos) break;
      std::string_view line(buffer_.data() + start, nl - start);
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
        requests.push_back(std::move(*m));
      }
    }
    if (broken) break;
    buffer_.erase(0, start);
    scanned_ = buffer_.size();
    if (buffer_.size() > options_.max_line) {
      why = Error{ErrorCode::plugin_crashed, fmt::format("protocol error: a message exceeds the {} byte limit", options_.max_line)};
      break;
    }
    if (!requests.empty()) return ReadEnd::requests;
  }
  close(why);
  if (on_closed_) on_closed_(why);
  return ReadEnd::ended;
}

// Leader/follower: one thread of the pool reads; when a request arrives it hands the reading to another
// (an idle one, or a new one within max_workers) and serves the request itself, so the answer leaves
// from the thread that read the question, with no hand-off in between. When no other thread can take
// over, the request is queued and the leader keeps reading: answers to nested calls (child -> host ->
// child) must always find a reader.
void RpcPeer::pool_loop() {
  std::unique_lock lk(workers_mutex_);
  for (;;) {
    ++idle_workers_;
    work_ready_.wait(lk, [&] { return stopping_ || may_lead() || !work_.empty(); });
    --idle_workers_;
    if (stopping_) return;
    if (!work_.empty() && may_lead() && (idle_workers_ > 0 || (workers_.size() < options_.max_workers && add_worker()))) {
      // Queued work first when another thread can take the reading: otherwise a request queued while a
      // caller read for itself would wait here for the next message to arrive, which may never come.
      work_ready_.notify_all();  // an idle thread (or the one just started) reads
      Message job = std::move(work_.front());
      work_.pop_front();
      lk.unlock();
      run(std::move(job));
      lk.lock();
      continue;
    }
    if (may_lead()) {
      leading_ = true;
      lk.unlock();
      std::vector<Message> requests;
      const auto end = read_messages(requests, nullptr, std::nullopt);
      lk.lock();
      leading_ = false;
      if (end == ReadEnd::ended) {
        ended_ = true;
        work_ready_.notify_all();
        continue;  // queued work still runs; then stopping_
      }
      if (end == ReadEnd::yielded) {
        work_ready_.notify_all();  // the caller waiting to lead
        continue;
      }
      // Every request but one waits for a thread; this one needs a successor to read before it serves.
      for (std::size_t i = 1; i < requests.size(); ++i) work_.push_back(std::move(requests[i]));
      const std::size_t can = ensure_workers(work_.size() + 1);
      if (can == 0 && workers_.empty()) {
        // Not a thread to be had, and none that will ever take the work: each queued request is answered
        // with the reason, rather than left waiting.
        work_.push_front(std::move(requests[0]));
        std::deque<Message> refused;
        refused.swap(work_);
        lk.unlock();
        for (const auto& job : refused)
          (void)write_line(error(job.id, Error{ErrorCode::unavailable, "cannot start a thread to serve the request"}), Clock::now() + options_.write_timeout);
        lk.lock();
        continue;
      }
      if (can == 0) {
        work_.push_front(std::move(requests[0]));  // no one to read in our place: keep reading
        continue;
      }
      work_ready_.notify_all();
      Message job = std::move(requests[0]);
      lk.unlock();
      run(std::move(job));
      lk.lock();
      continue;
    }
    Message job = std::move(work_.front());
    work_.pop_front();
    lk.unlock();
    run(std::move(job));
    lk.lock();
  }
}

// The caller of call() reads for itself while it waits, when no other caller does: its answer then needs
// no thread between the pipe and it. The pool's reader is asked to step aside (a kick it sees in its
// poll, while the other side is still working on the request); requests that arrive meanwhile go to the
// pool. Other callers wait for this one to hand them their answers, as they would for the pool's reader.
void RpcPeer::lead_until(const Pending& mine, std::optional<Clock::time_point> deadline) {
  std::unique_lock lk(workers_mutex_);
  if (ended_ || stopping_ || caller_leading_ || wants_lead_ > 0) return;
  if (leading_) {
    ++wants_lead_;
    std::uint64_t one = 1;
    (void)!::write(kick_fd_, &one, sizeof one);
    auto stepped_aside = [&] { return !leading_ || ended_ || stopping_; };
    if (deadline) work_ready_.wait_until(lk, *deadline, stepped_aside);
    else work_ready_.wait(lk, stepped_aside);
    --wants_lead_;
    if (leading_ || ended_ || stopping_) {
      work_ready_.notify_all();
      return;
    }
  }
  leading_ = caller_leading_ = true;
  lk.unlock();
  for (;;) {
    std::vector<Message> requests;
    const auto end = read_messages(requests, &mine, deadline);
    if (end == ReadEnd::requests) {
      lk.lock();
      for (auto& r : requests) work_.push_back(std::move(r));
      (void)ensure_workers(work_.size());
      lk.unlock();
      work_ready_.notify_all();
      continue;
    }
    lk.lock();
    if (end == ReadEnd::ended) ended_ = true;
    lk.unlock();
    break;
  }
  lk.lock();
  leading_ = caller_leading_ = false;
  if (idle_workers_ == 0 && !ended_) (void)add_worker();  // someone must read once we are gone
  lk.unlock();
  work_ready_.notify_all();
}

// Caller holds workers_mutex_. Starts threads (within max_workers) until `wanted` are idle or starting;
// returns how many there are.
std::size_t RpcPeer::ensure_workers(std::size_t wanted) {
  std::size_t can = idle_workers_;
  while (can < wanted && workers_.size() < options_.max_workers && add_worker()) ++can;
  return can;
}

// Caller holds workers_mutex_.
bool RpcPeer::add_worker() {
  try {
    workers_.emplace_back([this] { pool_loop(); });
    name_thread(workers_.back(), options_.thread_name);
    return true;
  } catch (const std::system_error&) {
    return false;  // out of threads (a process limit the peer hit itself): those running take the work later
  }
}

void RpcPeer::run(Message job) {
  Result<json::value> r = Error{ErrorCode::not_found, fmt::format("unknown method '{}'", job.method)};
  try {
    if (on_request_) r = on_request_(job.method, job.params);
  } catch (const std::exception& e) {
    r = Error{ErrorCode::internal, e.what()};
  }
  std::string reply = r ? result(job.id, *r) : error(job.id, r.error());
  (void)write_line(reply, Clock::now() + options_.write_timeout);
}

}  // namespace xcore::inline v1::jsonrpc
