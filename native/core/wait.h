// A blocking wait that runs on a dedicated thread.
//
// Waits never go to libuv's pool: four blocked flocks there would stall every
// fs call in the process. Each started Wait gets a thread of its own from a
// small process-wide set; a thread that finishes a wait lingers briefly for
// the next one (contended locks come in bursts) and then exits, so an idle
// process holds no extra threads. Every thread owns an Interrupter, which is
// how cancel() wakes a wait blocked in a syscall.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "clock.h"

namespace interlock {

class Interrupter;

class Wait {
 public:
  Wait() = default;
  Wait(const Wait&) = delete;
  Wait& operator=(const Wait&) = delete;

  // Intrusive count: the owner, the running thread and a pending delivery
  // each hold one, so whichever lets go last frees the wait.
  void retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Runs run() then finished() on a dedicated thread. 0 or -errno.
  int start(int64_t deadline_ns = kNoDeadline);
  // Asks run() to stop and wakes it if it blocks. Any thread; idempotent.
  void cancel();
  bool cancel_requested() const { return cancel_.load(std::memory_order_acquire); }
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }
  int64_t deadline() const { return deadline_; }
  // Blocks until run() and finished() have returned (teardown only).
  void join();
  bool done();

 protected:
  virtual ~Wait() = default;
  // Blocks until the answer is known. Must block only in calls the
  // interrupter can wake (flock) or poll cancel_requested() in short slices.
  virtual void run() = 0;
  // After run(), on the same thread: report the result (e.g. post it to JS).
  virtual void finished() {}
  // Inside cancel(), after the flag is set: wake a run() that is parked on
  // something other than a syscall (e.g. a condition variable).
  virtual void on_cancel() {}

 private:
  friend class WaitThreads;
  std::atomic<int> refs_{1};
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool done_ = false;
  int64_t deadline_ = kNoDeadline;
  Interrupter* intr_ = nullptr;  // set while a thread runs this wait
};

// Threads currently alive in the dedicated set (for tests and teardown).
int wait_threads_alive();
// Of those, the ones lingering for a next wait (tests: reuse needs one).
int wait_threads_idle();

}  // namespace interlock
