#include "flock.h"

#include <sys/file.h>

#include <ctime>

#include "clock.h"
#include "interrupter.h"

namespace interlock {

namespace {

// Where a timer tick cannot interrupt flock (qemu-user), or this thread has
// no timer (RLIMIT_SIGPENDING used up), a wait that must stay cancellable
// polls with LOCK_NB every millisecond instead.
Status flock_polling(int fd, int op, const std::atomic<bool>* cancel, int64_t deadline_ns) {
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) return Status{-ECANCELED, "flock"};
    if (deadline_ns != kNoDeadline && monotonic_ns() >= deadline_ns) return Status{-ETIMEDOUT, "flock"};
    if (::flock(fd, op | LOCK_NB) == 0) return Status{};
    if (errno != EWOULDBLOCK && errno != EINTR) return Status::fail("flock");
    timespec nap = {0, 1000000};
    nanosleep(&nap, nullptr);
  }
}

}  // namespace

Status flock_until(int fd, int op, const std::atomic<bool>* cancel, int64_t deadline_ns) {
  bool stoppable = cancel != nullptr || deadline_ns != kNoDeadline;
  if (stoppable && (op & LOCK_NB) == 0 && !(Interrupter::works() && Interrupter::bound_here())) {
    return flock_polling(fd, op, cancel, deadline_ns);
  }
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) return Status{-ECANCELED, "flock"};
    if (deadline_ns != kNoDeadline && monotonic_ns() >= deadline_ns) return Status{-ETIMEDOUT, "flock"};
    if (::flock(fd, op) == 0) return Status{};
    if (errno != EINTR) return Status::fail("flock");
    // EINTR: our tick or anybody's signal; the checks above decide.
  }
}

Status flock_waking(int fd, int op, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t wake_ns) {
  if (wake_ns == kNoDeadline || (deadline_ns != kNoDeadline && wake_ns >= deadline_ns)) {
    return flock_until(fd, op, cancel, deadline_ns);
  }
  Interrupter* intr = Interrupter::works() ? Interrupter::here() : nullptr;
  if (intr == nullptr) return flock_polling(fd, op, cancel, wake_ns);
  // A cancel that fires the timer between our re-aimings is not lost: its
  // flag is set before it fires, and our caller looks at the flag before it
  // blocks again.
  int armed = intr->arm_at(wake_ns);
  Status s = armed == 0 ? flock_until(fd, op, cancel, wake_ns) : Status{armed, "timer_settime"};
  if (deadline_ns != kNoDeadline) {
    intr->arm_at(deadline_ns);
  } else {
    intr->disarm();
  }
  return s;
}

Status flock_timed(int fd, int op, int64_t deadline_ns) {
  if (deadline_ns == kNoDeadline || (op & LOCK_NB) != 0) return flock_until(fd, op, nullptr, deadline_ns);
  // Cheap first try: most timed acquisitions are not contended.
  Status first = flock_until(fd, op | LOCK_NB, nullptr, kNoDeadline);
  if (first.error != -EWOULDBLOCK) return first;
  if (!Interrupter::works()) return flock_polling(fd, op, nullptr, deadline_ns);
  Interrupter intr;
  if (!intr.ok()) return flock_polling(fd, op, nullptr, deadline_ns);  // no timer to be had
  bool was_blocked = unblock_interrupt_signal();
  int armed = intr.arm_at(deadline_ns);
  Status st = armed == 0 ? flock_until(fd, op, nullptr, deadline_ns) : Status{armed, "timer_settime"};
  intr.disarm();
  if (was_blocked) block_interrupt_signal();
  return st;
}

}  // namespace interlock
