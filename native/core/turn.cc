#include "turn.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <ctime>

#include "clock.h"

namespace interlock {

uint64_t turn_id(int64_t since_ns, int32_t tid) {
  return uint64_t{static_cast<uint32_t>(since_ns / 1000000)} << 32 | static_cast<uint32_t>(tid);
}

bool turn_older(uint64_t a, uint64_t b) {
  auto d = static_cast<int32_t>(static_cast<uint32_t>(a >> 32) - static_cast<uint32_t>(b >> 32));
  return d < 0 || (d == 0 && static_cast<uint32_t>(a) < static_cast<uint32_t>(b));
}

bool turn_thread_gone(uint64_t turn) {
  auto tid = static_cast<pid_t>(static_cast<uint32_t>(turn));
  return kill(tid, 0) != 0 && errno == ESRCH;
}

uint32_t monotonic_ms32() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint32_t>(int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000);
}

int32_t ms_since(uint32_t then) { return static_cast<int32_t>(monotonic_ms32() - then); }

int futex_wait(std::atomic<uint32_t>* word, uint32_t seen, int64_t until_ns) {
  int64_t left = until_ns - monotonic_ns();
  if (left <= 0) return ETIMEDOUT;
  timespec ts = {static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, seen, &ts, nullptr, 0) == 0 ? 0 : errno;
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace interlock
