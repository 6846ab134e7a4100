// flock_until, flock_timed and the Interrupter: waits end on grant, cancel or
// deadline, and nothing else.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "flock.h"
#include "harness.h"
#include "interrupter.h"
#include "util.h"
#include "waiter.h"

using interlock::flock_timed;
using interlock::flock_until;
using interlock::Interrupter;
using interlock::kNoDeadline;
using interlock::monotonic_ns;
using interlock::Status;
using testutil::FlockWaiter;
using testutil::kPromptMs;
using testutil::ms_since;
using testutil::open_rw;
using testutil::TempDir;

namespace {

int try_ex(int fd) { return flock_until(fd, LOCK_EX | LOCK_NB, nullptr, kNoDeadline).error; }

bool signal_blocked(int sig) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, nullptr, &cur);
  return sigismember(&cur, sig) == 1;
}

void set_blocked(int sig, bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

}  // namespace

TEST(nonblocking_free_busy_shared) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int a = open_rw(p), b = open_rw(p), c = open_rw(p);
  CHECK_EQ(try_ex(a), 0);
  Status busy = flock_until(b, LOCK_EX | LOCK_NB, nullptr, kNoDeadline);
  CHECK_EQ(busy.error, -EWOULDBLOCK);
  CHECK_EQ(std::string(busy.syscall), "flock");
  CHECK_EQ(flock_until(b, LOCK_SH | LOCK_NB, nullptr, kNoDeadline).error, -EWOULDBLOCK);
  CHECK_EQ(flock_until(a, LOCK_UN, nullptr, kNoDeadline).error, 0);
  CHECK_EQ(flock_until(a, LOCK_SH | LOCK_NB, nullptr, kNoDeadline).error, 0);
  CHECK_EQ(flock_until(b, LOCK_SH | LOCK_NB, nullptr, kNoDeadline).error, 0);
  CHECK_EQ(try_ex(c), -EWOULDBLOCK);
  CHECK_EQ(flock_until(-1, LOCK_EX, nullptr, kNoDeadline).error, -EBADF);
  close(a), close(b), close(c);
}

TEST(cancel_wakes_blocked_flock) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p), other = open_rw(p);
  CHECK_EQ(try_ex(holder), 0);
  std::vector<double> latency;
  for (int round = 0; round < 20; ++round) {
    int fd = open_rw(p);
    FlockWaiter w(fd, LOCK_EX);
    w.await_blocked();
    int64_t sent = w.cancel();
    Status st = w.join_within(kPromptMs);
    CHECK_EQ(st.error, -ECANCELED);
    latency.push_back(static_cast<double>(w.done_at() - sent) / 1e6);
    close(fd);
  }
  CHECK_LE(testutil::report_latency("cancel -> flock returns", latency), kPromptMs);
  CHECK_EQ(try_ex(other), -EWOULDBLOCK);  // the holder still holds: nobody stole it
  close(holder), close(other);
}

// The signal can land after the cancel check and before flock(2) is entered;
// the repeating tick must still end the wait. Cancels land at spread-out
// moments, most before the waiter is blocked.
TEST(cancel_at_any_moment) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p);
  CHECK_EQ(try_ex(holder), 0);
  uint32_t seed = 12345;
  std::vector<double> latency;
  for (int round = 0; round < 200; ++round) {
    seed = seed * 1103515245u + 12345u;
    int delay_us = static_cast<int>((seed >> 8) % 400);
    int fd = open_rw(p);
    FlockWaiter w(fd, LOCK_EX);
    if (round % 2 == 0) w.tid();  // half wait for the thread to exist first
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    int64_t sent = w.cancel();
    Status st = w.join_within(kPromptMs);
    CHECK_EQ(st.error, -ECANCELED);
    latency.push_back(static_cast<double>(w.done_at() - sent) / 1e6);
    close(fd);
  }
  testutil::report_latency("cancel at a random moment -> return", latency);
  close(holder);
}

TEST(deadline_gives_etimedout) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p), fd = open_rw(p);
  CHECK_EQ(try_ex(holder), 0);
  int64_t start = monotonic_ns();
  Status st = flock_timed(fd, LOCK_EX, interlock::deadline_after_ms(50));
  double took = ms_since(start);
  std::printf("  flock_timed 50 ms on a held lock: %.3f ms\n", took);
  CHECK_EQ(st.error, -ETIMEDOUT);
  CHECK_GE(took, 49.9);
  CHECK_LE(took, 50 + kPromptMs);

  // The same on another thread through flock_until and an armed interrupter.
  start = monotonic_ns();
  FlockWaiter w(fd, LOCK_EX, interlock::deadline_after_ms(40));
  st = w.join_within(40 + kPromptMs);
  CHECK_EQ(st.error, -ETIMEDOUT);
  CHECK_GE(ms_since(start), 39.9);
  close(holder), close(fd);
}

TEST(expired_deadline) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p), fd = open_rw(p);
  // Free: flock_timed's first, non-blocking try wins over an expired deadline.
  CHECK_EQ(flock_timed(fd, LOCK_EX, monotonic_ns() - 1).error, 0);
  CHECK_EQ(flock_until(fd, LOCK_UN, nullptr, kNoDeadline).error, 0);
  CHECK_EQ(try_ex(holder), 0);
  int64_t start = monotonic_ns();
  CHECK_EQ(flock_timed(fd, LOCK_EX, monotonic_ns() - 1).error, -ETIMEDOUT);
  CHECK_LE(ms_since(start), kPromptMs);
  close(holder), close(fd);
}

TEST(grant_is_reported) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p), fd = open_rw(p), probe = open_rw(p);
  CHECK_EQ(try_ex(holder), 0);
  std::thread releaser([holder] {
    testutil::sleep_ms(30);
    flock(holder, LOCK_UN);
  });
  int64_t start = monotonic_ns();
  Status st = flock_timed(fd, LOCK_EX, interlock::deadline_after_ms(5000));
  double took = ms_since(start);
  releaser.join();
  CHECK_EQ(st.error, 0);
  CHECK_GE(took, 25.0);
  CHECK_LE(took, 30 + kPromptMs);
  CHECK_EQ(try_ex(probe), -EWOULDBLOCK);  // fd really holds it
  CHECK_EQ(flock_until(fd, LOCK_UN, nullptr, kNoDeadline).error, 0);

  // And through flock_until on a waiter thread that could have been cancelled.
  CHECK_EQ(try_ex(holder), 0);
  FlockWaiter w(fd, LOCK_EX);
  w.await_blocked();
  flock(holder, LOCK_UN);
  CHECK_EQ(w.join_within(kPromptMs).error, 0);
  CHECK_EQ(try_ex(probe), -EWOULDBLOCK);
  close(holder), close(fd), close(probe);
}

std::atomic<int> usr1_count{0};

// EINTR from a signal that is not ours is retried: the wait goes on.
TEST(other_signals_do_not_end_the_wait) {
  struct sigaction sa = {};
  sa.sa_handler = [](int) { usr1_count.fetch_add(1); };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: flock returns EINTR
  CHECK_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p), fd = open_rw(p);
  CHECK_EQ(try_ex(holder), 0);
  FlockWaiter w(fd, LOCK_EX);
  w.await_blocked();
  for (int i = 1; i <= 5; ++i) {
    CHECK_EQ(pthread_kill(w.handle(), SIGUSR1), 0);
    int64_t start = monotonic_ns();
    while (usr1_count.load() < i && ms_since(start) < kPromptMs) testutil::sleep_ms(1);
    CHECK_EQ(usr1_count.load(), i);
  }
  w.await_blocked();  // back in flock(2)
  CHECK(!w.done());
  flock(holder, LOCK_UN);
  CHECK_EQ(w.join_within(kPromptMs).error, 0);
  close(holder), close(fd);
}

TEST(handler_is_realtime_without_sa_restart) {
  int sig = Interrupter::signal_number();
  CHECK_GE(sig, SIGRTMIN);
  CHECK_LE(sig, SIGRTMAX);
  CHECK_EQ(Interrupter::signal_number(), sig);  // installed once
  struct sigaction sa;
  CHECK_EQ(sigaction(sig, nullptr, &sa), 0);
  CHECK(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
  CHECK_EQ(sa.sa_flags & SA_RESTART, 0);
}

TEST(skips_a_claimed_signal) {
  struct sigaction mine = {};
  mine.sa_handler = [](int) {};
  sigemptyset(&mine.sa_mask);
  CHECK_EQ(sigaction(SIGRTMAX, &mine, nullptr), 0);
  int sig = Interrupter::signal_number();
  CHECK_EQ(sig, SIGRTMAX - 1);
  struct sigaction now;
  CHECK_EQ(sigaction(SIGRTMAX, nullptr, &now), 0);
  CHECK(now.sa_handler == mine.sa_handler);  // ours was left alone
}

// flock_timed may be called with the signal blocked (a thread that masks it):
// it unblocks it to be woken and puts the mask back.
TEST(timed_restores_signal_mask) {
  int sig = Interrupter::signal_number();
  CHECK_GE(sig, 0);
  TempDir dir;
  std::string p = dir.file("a.lock");
  int holder = open_rw(p), fd = open_rw(p);
  CHECK_EQ(try_ex(holder), 0);
  set_blocked(sig, true);
  CHECK_EQ(flock_timed(fd, LOCK_EX, interlock::deadline_after_ms(20)).error, -ETIMEDOUT);
  CHECK(signal_blocked(sig));
  set_blocked(sig, false);
  CHECK_EQ(flock_timed(fd, LOCK_EX, interlock::deadline_after_ms(20)).error, -ETIMEDOUT);
  CHECK(!signal_blocked(sig));
  close(holder), close(fd);
}

TEST(disarm_stops_ticks) {
  int sig = Interrupter::signal_number();
  CHECK_GE(sig, 0);
  set_blocked(sig, true);  // ticks stay pending where the test can see them
  Interrupter intr;
  CHECK(intr.ok());
  sigset_t only, pending;
  sigemptyset(&only);
  sigaddset(&only, sig);
  timespec zero = {0, 0};
  CHECK_EQ(intr.fire_now(), 0);
  testutil::sleep_ms(5);
  sigpending(&pending);
  CHECK(sigismember(&pending, sig));
  CHECK_EQ(sigtimedwait(&only, nullptr, &zero), sig);
  testutil::sleep_ms(5);  // it repeats
  sigpending(&pending);
  CHECK(sigismember(&pending, sig));
  CHECK_EQ(intr.disarm(), 0);
  while (sigtimedwait(&only, nullptr, &zero) == sig) {
  }
  testutil::sleep_ms(10);
  sigpending(&pending);
  CHECK(!sigismember(&pending, sig));
}

// A holder that dies loses its flock to the kernel; a blocked waiter gets it.
TEST(owner_death_hands_over) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  int ready[2];
  CHECK_EQ(pipe(ready), 0);
  pid_t child = fork();
  CHECK_GE(child, 0);
  if (child == 0) {
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(3);
    char c = 'x';
    if (write(ready[1], &c, 1) != 1) _exit(4);
    for (;;) pause();
  }
  char c;
  CHECK_EQ(read(ready[0], &c, 1), 1);
  int fd = open_rw(p);
  CHECK_EQ(try_ex(fd), -EWOULDBLOCK);
  FlockWaiter w(fd, LOCK_EX);
  w.await_blocked();
  int64_t start = monotonic_ns();
  CHECK_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  CHECK_EQ(waitpid(child, &status, 0), child);
  CHECK(WIFSIGNALED(status));
  CHECK_EQ(w.join_within(kPromptMs).error, 0);
  std::printf("  SIGKILL of the holder -> grant: %.3f ms\n", ms_since(start));
  close(fd), close(ready[0]), close(ready[1]);
}

TEST_MAIN()
