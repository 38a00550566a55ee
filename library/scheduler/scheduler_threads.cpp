#include "scheduler/scheduler_threads.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include "core/thread_name.hpp"

namespace xcore::inline v1 {

using namespace std::chrono;

SchedulerThreads::SchedulerThreads(unsigned workers) : impl_(std::make_unique<Impl>(std::max(1u, workers))) {}
SchedulerThreads::~SchedulerThreads() = default;

std::shared_ptr<SchedulerThreads> SchedulerThreads::shared() {
  static const auto threads = std::make_shared<SchedulerThreads>(4);
  return threads;
}

unsigned SchedulerThreads::workers() const { return impl_->worker_count; }

SchedulerThreads::Impl::Impl(unsigned workers) : worker_count(workers) {
  timer = std::thread([this] { timer_loop(); });
  name_thread(timer, "xcore-sched");
  for (unsigned i = 0; i < workers; ++i) {
    workers_.emplace_back([this] { worker_loop(); });
    name_thread(workers_.back(), "xcore-job");
  }
}

SchedulerThreads::Impl::~Impl() {
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  timer_wake.notify_all();
  work_ready.notify_all();
  timer.join();
  for (auto& w : workers_) w.join();
}

void SchedulerThreads::Impl::place(Client* c, Clock::time_point at) {
  if (c->due != timers.end()) {
    if (c->due->first <= at) return;  // already due as soon or sooner
    timers.erase(c->due);
  }
  c->due = timers.emplace(at, c);
  if (c->due == timers.begin()) timer_wake.notify_one();  // the timer sleeps until the earliest
}

SchedulerThreads::Impl::Client* SchedulerThreads::Impl::attach(std::function<milliseconds()> tick, bool timed) {
  std::lock_guard lock(mutex);
  auto& c = clients.emplace_back();
  c.self = std::prev(clients.end());
  c.tick = std::move(tick);
  c.due = timers.end();
  if (timed) place(&c, Clock::now());
  else c.detached = true;  // never ticked by the timer; its jobs still run here
  return &c;
}

void SchedulerThreads::Impl::wake(Client* c, milliseconds delay) {
  std::lock_guard lock(mutex);
  if (!c->detached) place(c, Clock::now() + delay);
}

void SchedulerThreads::Impl::submit(Client* c, std::vector<std::function<void()>> jobs) {
  if (jobs.empty()) return;
  {
    std::lock_guard lock(mutex);
    for (auto& j : jobs) c->jobs.push_back(std::move(j));
    if (!c->in_turn) {
      c->in_turn = true;
      turns.push_back(c);
    }
  }
  if (jobs.size() == 1) work_ready.notify_one();
  else work_ready.notify_all();
}

void SchedulerThreads::Impl::stop_ticks(Client* c) {
  std::unique_lock lock(mutex);
  c->detached = true;
  if (c->due != timers.end()) {
    timers.erase(c->due);
    c->due = timers.end();
  }
  tick_done.wait(lock, [&] { return !c->ticking; });
}

void SchedulerThreads::Impl::detach(Client* c) {
  std::lock_guard lock(mutex);
  if (c->in_turn) std::erase(turns, c);  // normally not: the Scheduler waited for its jobs
  clients.erase(c->self);
}

void SchedulerThreads::Impl::timer_loop() {
  std::unique_lock lock(mutex);
  while (!stopping) {
    if (timers.empty()) {
      timer_wake.wait(lock);
      continue;
    }
    const auto first = timers.begin();
    if (const auto at = first->first; at > Clock::now()) {  // a copy: the entry may go while we wait
      timer_wake.wait_until(lock, at);
      continue;
    }
    Client* c = first->second;
    timers.erase(first);
    c->due = timers.end();
    c->ticking = true;
    lock.unlock();
    milliseconds next = milliseconds::max();
    try {
      next = c->tick();
    } catch (...) {
      next = seconds(1);  // tick() reports its own failures; a throw is retried, not the end of the timer
    }
    lock.lock();
    c->ticking = false;
    if (!c->detached && next != milliseconds::max()) place(c, Clock::now() + next);
    tick_done.notify_all();
  }
}

void SchedulerThreads::Impl::worker_loop() {
  // Jobs yield to the timer thread that fires them: a burst of runs must not make the next fires late.
  // (Linux: nice applies per thread; raising it needs no privilege.)
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  std::unique_lock lock(mutex);
  for (;;) {
    work_ready.wait(lock, [&] { return stopping || !turns.empty(); });
    if (turns.empty()) return;  // stopping; every Scheduler waited for its jobs before it went
    Client* c = turns.front();
    turns.pop_front();
    auto job = std::move(c->jobs.front());
    c->jobs.pop_front();
    // One job per turn: a Scheduler with more waits behind the others that have some.
    if (!c->jobs.empty()) turns.push_back(c);
    else c->in_turn = false;
    lock.unlock();
    job();  // the Scheduler's: runs the job and counts it done (it may go right after; `c` is not touched)
    lock.lock();
  }
}

}  // namespace xcore::inline v1
