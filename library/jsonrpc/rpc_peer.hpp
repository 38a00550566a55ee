// One end of a JSON-RPC 2.0 connection over a pair of file descriptors, one message per line.
// Both the host's sandbox runner and the child's plugin host use it.
//
// - call() waits for the answer until its deadline; every request has a fresh id, and an answer that
//   arrives after its caller gave up is dropped, never handed to the next caller.
// - Incoming requests run on the pool's threads, at most max_workers at once (nested calls child -> host
//   -> child must not deadlock: one thread always reads); notifications run on the thread that reads, in
//   order, and must never wait for the other side.
// - A line longer than the cap, or one that is not JSON-RPC, closes the connection: the peer is then
//   broken, and every pending call fails with the reason.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

#include "jsonrpc/jsonrpc.hpp"

namespace xcore::inline v1::jsonrpc {

class RpcPeer {
 public:
  using Clock = std::chrono::steady_clock;
  using RequestHandler = std::function<Result<json::value>(const std::string& method, const json::value& params)>;
  using NotificationHandler = std::function<void(const std::string& method, const json::value& params)>;
  using ClosedHandler = std::function<void(const Error& why)>;

  struct Options {
    std::size_t max_line = 16u << 20;  // bytes; a longer line is a protocol error
    std::size_t max_workers = 32;      // threads serving incoming requests at once
    std::chrono::milliseconds write_timeout{5000};  // a peer that stops reading is broken
    std::string thread_name = "xcore-rpc";          // what its threads are called (name_thread)
  };

  // Takes ownership of both fds.
  RpcPeer(int read_fd, int write_fd, Options options);
  ~RpcPeer();  // closes and joins every thread
  RpcPeer(const RpcPeer&) = delete;
  RpcPeer& operator=(const RpcPeer&) = delete;

  void start(RequestHandler on_request, NotificationHandler on_notification, ClosedHandler on_closed);

  // `deadline` unset: wait until the connection closes.
  Result<json::value> call(std::string_view method, const json::value& params, std::optional<Clock::time_point> deadline = {});
  Result<void> notify(std::string_view method, const json::value& params);
  // Stops reading and fails pending calls with `why` (plugin_crashed by default).
  void close(Error why = Error{ErrorCode::plugin_crashed, "connection closed"});
  bool closed() const;
  // Ends what we send: the other side reads end-of-file (an MCP server's cue to exit). Later writes fail.
  void close_output();

 private:
  struct Pending {
    bool done = false;
    Result<json::value> result = Error{ErrorCode::internal, "no answer"};
  };

  enum class ReadEnd { requests, done, yielded, timeout, ended };
  ReadEnd read_messages(std::vector<Message>& requests, const Pending* mine, std::optional<Clock::time_point> until);
  void lead_until(const Pending& mine, std::optional<Clock::time_point> deadline);
  // Caller holds workers_mutex_: a pool thread may take up reading.
  bool may_lead() const { return !leading_ && !ended_ && wants_lead_ == 0; }
  void pool_loop();
  std::size_t ensure_workers(std::size_t wanted);
  bool add_worker();
  void run(Message job);
  Result<void> write_line(const std::string& line, Clock::time_point deadline);
  void fail_all(const Error& why);

  int read_fd_, write_fd_, wake_fd_;
  int kick_fd_;  // asks the pool's reader to step aside for a caller
  Options options_;
  RequestHandler on_request_;
  NotificationHandler on_notification_;
  ClosedHandler on_closed_;

  mutable std::mutex mutex_;  // pending_, closed_, close_reason_
  std::condition_variable answered_;
  std::map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  std::uint64_t next_id_ = 1;
  bool closed_ = false;
  Error close_reason_;

  std::mutex write_mutex_;

  // The pool (leader/follower): reader_ and workers_ take turns reading; the one that reads a request
  // serves it once another reads in its place.
  std::mutex workers_mutex_;
  std::condition_variable work_ready_;
  std::deque<Message> work_;
  std::vector<std::thread> workers_;
  std::size_t idle_workers_ = 0;
  bool leading_ = false;  // a thread is reading
  bool caller_leading_ = false;  // ... and it is a caller of call(), reading for its own answer
  std::size_t wants_lead_ = 0;   // callers waiting for the pool's reader to step aside
  bool ended_ = false;    // nothing more will be read
  bool stopping_ = false;
  std::string buffer_;    // read, not yet parsed (the leader's)
  std::size_t scanned_ = 0;  // bytes of buffer_ already searched for a newline: a long line is scanned once

  std::thread reader_;
};

}  // namespace xcore::inline v1::jsonrpc
