// Monotonic time in nanoseconds, the one clock every deadline here uses, so a
// jump of the wall clock never stretches or shortens a timeout.
#pragma once

#include <cstdint>
#include <ctime>

namespace interlock {

inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// No deadline: wait until granted or cancelled.
constexpr int64_t kNoDeadline = -1;

inline int64_t deadline_after_ms(double ms) {
  if (ms < 0) return kNoDeadline;
  return monotonic_ns() + static_cast<int64_t>(ms * 1e6);
}

}  // namespace interlock
