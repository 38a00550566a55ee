// One run of a sandboxed plugin's process as the host sees it: its pid, protocol peer, stderr drain and
// cgroup, and how it is ended and reaped. Also the process facts the runner reports.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <xcore/json.hpp>

#include "jsonrpc/rpc_peer.hpp"
#include "sandbox/cgroup.hpp"

namespace xcore::inline v1::sandbox {

// "exited with status 3", "killed by SIGSEGV (Segmentation fault)".
std::string describe_exit(int status);
// SIGKILL to every process of the session `sid` but its leader.
void kill_session_except_leader(pid_t sid);
// Resident memory and CPU time of a process ("rss_bytes", "cpu_seconds").
void add_process_figures(pid_t pid, json::object& out);

// Runs `spawn` (a posix_spawn) on the one thread of this process that lives as long as the process: the
// kernel sends a child's parent-death signal when the *thread* that forked it ends, so a child forked by
// a short-lived thread (a supervisor's restart, a worker that goes away) would die with that thread.
int spawn_on_lasting_thread(const std::function<int()>& spawn);

// One run of the plugin's process.
struct Child {
  pid_t pid = -1;
  std::unique_ptr<jsonrpc::RpcPeer> peer;
  std::thread stderr_reader;
  json::array isolation;
  std::string exit_reason;  // set once reaped
  bool reaped = false;
  std::map<std::uint64_t, std::uint64_t> subscriptions;  // child's id -> host's id
  std::mutex subscriptions_mutex;
  std::shared_ptr<const Cgroup> cgroup;  // the plugin's, shared by its successive processes
  std::uint64_t oom_kills_at_start = 0;

  // Ends the plugin's side (reaper, plugin, anything they started) but not the helper, which then sees
  // its child end, reaps it and exits by itself. Killing the helper first would leave its children to the
  // system's init as zombies.
  void kill_group();
  // Waits up to `grace` for the process to exit by itself; then, if `term_grace` is set, sends SIGTERM
  // to its process group and waits that long again; then kills the plugin's side and, if the helper still
  // has not gone, the helper too.
  // Callers on several threads may end the same child (two calls missing their deadlines): reaping and
  // the exit reason are guarded, and the child is reaped exactly once.
  void reap(std::chrono::milliseconds grace, std::chrono::milliseconds term_grace = std::chrono::milliseconds(0));
  // Kills it for `reason` (kept unless it had already ended) and reaps it.
  void end_for(std::string reason);
  // The exit reason, once reaped (empty before).
  std::string ended() const;
  ~Child();

 private:
  void reap_locked(std::chrono::milliseconds grace, std::chrono::milliseconds term_grace);
  mutable std::mutex end_mutex_;
};

}  // namespace xcore::inline v1::sandbox
