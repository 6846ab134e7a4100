// A thread blocked in flock_until, cancelled the way Wait does it: the
// canceller sets the flag and fires the waiter's interrupter under a mutex
// that the waiter also takes before its interrupter goes away.
#pragma once

#include <sys/syscall.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "flock.h"
#include "interrupter.h"
#include "util.h"

namespace testutil {

class FlockWaiter {
 public:
  FlockWaiter(int fd, int op, int64_t deadline_ns = interlock::kNoDeadline)
      : thread_([this, fd, op, deadline_ns] { run(fd, op, deadline_ns); }) {}
  ~FlockWaiter() {
    if (thread_.joinable()) thread_.join();
  }

  pid_t tid() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return tid_ != 0; });
    return tid_;
  }
  void await_blocked() { await_blocked_in(tid(), SYS_flock); }
  std::thread::native_handle_type handle() { return thread_.native_handle(); }

  // Returns when the cancel was sent (monotonic ns).
  int64_t cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = interlock::monotonic_ns();
    cancel_.store(true, std::memory_order_release);
    if (intr_ != nullptr) intr_->fire_now();
    return now;
  }

  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

  // Fails the test if the wait has not ended within `ms`.
  interlock::Status join_within(double ms) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto limit = std::chrono::microseconds(static_cast<int64_t>(ms * 1000));
      if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
        harness::fail(__FILE__, __LINE__, "waiter still blocked after " + std::to_string(ms) + " ms");
      }
    }
    thread_.join();
    return result_;
  }
  int64_t done_at() const { return done_at_; }

 private:
  void run(int fd, int op, int64_t deadline_ns) {
    interlock::Interrupter intr;
    if (!intr.ok()) harness::fail(__FILE__, __LINE__, "no interrupter");
    {
      std::lock_guard<std::mutex> lock(mu_);
      intr_ = &intr;
      tid_ = thread_id();
      if (deadline_ns != interlock::kNoDeadline) intr.arm_at(deadline_ns);
      cv_.notify_all();
    }
    interlock::Status st = interlock::flock_until(fd, op, &cancel_, deadline_ns);
    int64_t end = interlock::monotonic_ns();
    std::lock_guard<std::mutex> lock(mu_);
    intr.disarm();
    intr_ = nullptr;
    result_ = st;
    done_at_ = end;
    done_ = true;
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> cancel_{false};
  interlock::Interrupter* intr_ = nullptr;
  pid_t tid_ = 0;
  bool done_ = false;
  interlock::Status result_;
  int64_t done_at_ = 0;
  std::thread thread_;  // last: starts once the fields above exist
};

}  // namespace testutil
