// Inside SchedulerThreads: what a Scheduler attaches to. One timer thread keeps each attached Scheduler's
// next tick in a queue ordered by time and calls it when due; one pool of workers serves the Schedulers'
// job queues in turn. Lock order: a Scheduler's own mutex, then this one's; neither thread here calls into a
// Scheduler while holding its own lock.
#pragma once

#include <xcore/scheduler.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace xcore::inline v1 {

struct SchedulerThreads::Impl {
  using Clock = std::chrono::steady_clock;

  // One attached Scheduler.
  struct Client {
    // Called by the timer when due: ticks, and says how long until it wants the next tick (max: never,
    // until wake()).
    std::function<std::chrono::milliseconds()> tick;
    std::multimap<Clock::time_point, Client*>::iterator due;  // in `timers`, or timers.end()
    bool ticking = false;
    bool detached = false;
    std::deque<std::function<void()>> jobs;  // waiting for a worker
    bool in_turn = false;                    // in `turns`
    std::list<Client>::iterator self;        // its place in `clients`: detach is O(1) with thousands
  };

  explicit Impl(unsigned workers);
  ~Impl();

  // The timer will call `tick` once it is due (at once, the first time).
  Client* attach(std::function<std::chrono::milliseconds()> tick, bool timed);
  // The Scheduler's earliest fire moved: tick in `delay` (sooner than planned, or instead of never).
  void wake(Client* c, std::chrono::milliseconds delay);
  // Queues jobs to run on the pool, in turn with other Schedulers' jobs.
  void submit(Client* c, std::vector<std::function<void()>> jobs);
  // No tick after this returns (one under way is waited for). Jobs already queued still run.
  void stop_ticks(Client* c);
  // Forgets the client: its queue must be empty (the Scheduler waited for its jobs).
  void detach(Client* c);

  void timer_loop();
  void worker_loop();
  // Caller holds `mutex`.
  void place(Client* c, Clock::time_point at);

  std::mutex mutex;
  std::condition_variable timer_wake, work_ready, tick_done;
  std::multimap<Clock::time_point, Client*> timers;
  std::list<Client> clients;
  std::deque<Client*> turns;  // clients with queued jobs, served one job at a time, round robin
  bool stopping = false;
  unsigned worker_count;
  std::thread timer;
  std::vector<std::thread> workers_;
};

struct SchedulerThreadsAccess {
  static SchedulerThreads::Impl& of(SchedulerThreads& t) { return *t.impl_; }
};

}  // namespace xcore::inline v1
