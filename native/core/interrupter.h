// Wakes one thread out of a blocking syscall such as flock(2).
//
// Closing the fd from another thread does not wake a blocked flock; a signal
// whose handler was installed without SA_RESTART does (the call fails with
// EINTR). A single signal can be lost: it may land after the waiter checked
// its cancel flag but before it entered the syscall. So the interrupter is a
// POSIX timer aimed at the thread (SIGEV_THREAD_ID) that, once fired, keeps
// firing every millisecond until disarmed: a waiter that missed one tick is
// woken by the next, and the cost is paid only by waits that are cancelled
// or time out.
#pragma once

#include <cstdint>

namespace interlock {

class Interrupter {
 public:
  // Binds to the calling thread. ok() is false if no timer could be made.
  Interrupter();
  ~Interrupter();
  Interrupter(const Interrupter&) = delete;
  Interrupter& operator=(const Interrupter&) = delete;

  bool ok() const { return timer_ >= 0; }

  // First tick at `deadline_ns` (CLOCK_MONOTONIC), then every millisecond.
  int arm_at(int64_t deadline_ns);
  // First tick now. Safe from any thread while this object lives.
  int fire_now();
  int disarm();

  // The signal used, installed once per process; -errno if none was free.
  static int signal_number();
  // Whether a timer tick really interrupts a blocking call here (probed
  // once). Under qemu-user it does not; waits then poll instead.
  static bool works();
  // Whether the calling thread has an Interrupter with a timer right now.
  // A thread could make none when RLIMIT_SIGPENDING, which also caps POSIX
  // timers, is used up; nothing could wake its blocking calls, so its waits
  // poll instead.
  static bool bound_here();
  // The calling thread's newest Interrupter with a timer, or nullptr: a wait
  // thread's own, so a wait may aim it at an earlier wake-up and back.
  static Interrupter* here();

 private:
  int timer_ = -1;
  Interrupter* outer_ = nullptr;  // here() before this one
};

// Makes sure the interrupt signal can reach the calling thread; returns the
// previous mask state so callers can restore it.
bool unblock_interrupt_signal();
void block_interrupt_signal();

}  // namespace interlock
