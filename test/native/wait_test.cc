// Wait on dedicated threads: cancel, deadline, grant, thread reuse and exit,
// and the reference count that lets the owner or the thread free the wait.
#include <signal.h>
#include <sys/syscall.h>

#include <atomic>
#include <string>
#include <vector>

#include "harness.h"
#include "interrupter.h"
#include "lock_file.h"
#include "util.h"
#include "wait.h"

using interlock::LockFile;
using interlock::monotonic_ns;
using interlock::Status;
using interlock::Wait;
using testutil::kPromptMs;
using testutil::ms_since;
using testutil::TempDir;

namespace {

std::atomic<int> destroyed{0};

// The binding's LockWait<LockFileObject> without Node-API: lock() in run(), note the thread.
class LockWait : public Wait {
 public:
  explicit LockWait(const std::string& path) : file_(path, 0600, true) {}

  // Read only after join(): done_ is published under the wait's mutex.
  Status result;
  pid_t run_tid = 0;
  pid_t finished_tid = 0;
  int64_t ended_at = 0;
  sigset_t run_mask;
  std::atomic<pid_t> blocked_tid{0};
  LockFile& file() { return file_; }

 protected:
  ~LockWait() override { destroyed.fetch_add(1); }
  void run() override {
    run_tid = testutil::thread_id();
    pthread_sigmask(SIG_BLOCK, nullptr, &run_mask);
    blocked_tid.store(run_tid);
    result = file_.lock(false, cancel_flag(), deadline());
    ended_at = monotonic_ns();
  }
  void finished() override { finished_tid = testutil::thread_id(); }

 private:
  LockFile file_;
};

void await_blocked(LockWait* w) {
  while (w->blocked_tid.load() == 0) std::this_thread::yield();
  testutil::await_blocked_in(w->blocked_tid.load(), SYS_flock);
}

void join_within(Wait* w, double ms) {
  int64_t start = monotonic_ns();
  while (!w->done()) {
    if (ms_since(start) > ms) harness::fail(__FILE__, __LINE__, "wait not done after " + std::to_string(ms) + " ms");
    testutil::sleep_ms(1);
  }
  w->join();
}

// The running thread drops its reference to a wait just after join() sees it
// done, so the owner's release() need not be the last one: a wait is freed a
// moment after both are over.
void await_destroyed(int n, double ms) {
  int64_t start = monotonic_ns();
  while (destroyed.load() < n && ms_since(start) < ms) testutil::sleep_ms(1);
  CHECK_EQ(destroyed.load(), n);
}

void await_threads(int n, double ms) {
  int64_t start = monotonic_ns();
  while (interlock::wait_threads_alive() != n) {
    if (ms_since(start) > ms) {
      harness::fail(
          __FILE__, __LINE__,
          "wait threads alive: " + std::to_string(interlock::wait_threads_alive()) + ", want " + std::to_string(n));
    }
    testutil::sleep_ms(5);
  }
}

bool held(const std::string& path) {
  LockFile probe(path, 0600, true);
  bool busy = false;
  if (!probe.try_lock(false, &busy).ok()) harness::fail(__FILE__, __LINE__, "probe");
  return busy;
}

}  // namespace

TEST(cancel_wakes_wait) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  std::vector<double> latency;
  for (int round = 0; round < 20; ++round) {
    auto* w = new LockWait(p);
    CHECK_EQ(w->start(), 0);
    await_blocked(w);
    int64_t sent = monotonic_ns();
    w->cancel();
    join_within(w, kPromptMs);
    CHECK_EQ(w->result.error, -ECANCELED);
    CHECK_EQ(w->finished_tid, w->run_tid);
    latency.push_back(static_cast<double>(w->ended_at - sent) / 1e6);
    w->release();
  }
  CHECK_LE(testutil::report_latency("Wait::cancel -> run returns", latency), kPromptMs);
  await_destroyed(20, kPromptMs);
}

TEST(cancel_at_any_moment) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  uint32_t seed = 777;
  for (int round = 0; round < 200; ++round) {
    seed = seed * 1103515245u + 12345u;
    auto* w = new LockWait(p);
    CHECK_EQ(w->start(), 0);
    std::this_thread::sleep_for(std::chrono::microseconds((seed >> 8) % 400));
    w->cancel();
    join_within(w, kPromptMs);
    CHECK_EQ(w->result.error, -ECANCELED);
    w->release();
  }
  await_destroyed(200, kPromptMs);
}

TEST(cancel_before_start) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  auto* w = new LockWait(p);
  w->cancel();
  CHECK(w->cancel_requested());
  CHECK_EQ(w->start(), 0);
  join_within(w, kPromptMs);
  CHECK_EQ(w->result.error, -ECANCELED);
  w->cancel();  // after the end: harmless
  w->release();
}

TEST(deadline_gives_etimedout) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  auto* w = new LockWait(p);
  int64_t start = monotonic_ns();
  CHECK_EQ(w->start(interlock::deadline_after_ms(50)), 0);
  join_within(w, 50 + kPromptMs);
  double took = static_cast<double>(w->ended_at - start) / 1e6;
  std::printf("  Wait with a 50 ms deadline on a held lock: %.3f ms\n", took);
  CHECK_EQ(w->result.error, -ETIMEDOUT);
  CHECK_GE(took, 49.9);
  w->release();
}

TEST(grant_is_reported) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  auto* w = new LockWait(p);
  CHECK_EQ(w->start(interlock::deadline_after_ms(10000)), 0);
  await_blocked(w);
  CHECK(!w->done());
  int64_t start = monotonic_ns();
  CHECK_EQ(holder.unlock().error, 0);
  join_within(w, kPromptMs);
  std::printf("  unlock -> waiter granted: %.3f ms\n", static_cast<double>(w->ended_at - start) / 1e6);
  CHECK_EQ(w->result.error, 0);
  CHECK_NE(w->run_tid, testutil::thread_id());
  CHECK_EQ(w->finished_tid, w->run_tid);
  CHECK(held(p));
  w->release();  // the last reference closes the file, dropping the lock
  await_destroyed(1, kPromptMs);
  CHECK(!held(p));
}

// Waits run with process signals blocked, so SIGINT and friends keep going to
// the application's threads; only the interrupt signal gets through.
TEST(wait_thread_signal_mask) {
  TempDir dir;
  auto* w = new LockWait(dir.file("a.lock"));
  CHECK_EQ(w->start(), 0);
  join_within(w, kPromptMs);
  CHECK_EQ(w->result.error, 0);
  for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGUSR1, SIGPIPE}) CHECK(sigismember(&w->run_mask, sig) == 1);
  CHECK(sigismember(&w->run_mask, interlock::Interrupter::signal_number()) == 0);
  w->release();
}

// A thread lingers for the next wait (same thread), then exits when idle.
// Cancelling a finished wait must not disturb the next wait on its thread.
TEST(threads_reused_then_exit) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  CHECK_EQ(interlock::wait_threads_alive(), 0);
  auto* first = new LockWait(p);
  CHECK_EQ(first->start(), 0);
  join_within(first, kPromptMs);
  CHECK_EQ(first->result.error, 0);
  CHECK_EQ(interlock::wait_threads_alive(), 1);
  // The wait is done before its thread rejoins the idle list; a wait started
  // in between gets a thread of its own (seen under TSan on a loaded VM).
  int64_t done_at = monotonic_ns();
  while (interlock::wait_threads_idle() != 1) {
    if (ms_since(done_at) > 2000) harness::fail(__FILE__, __LINE__, "the finished wait's thread never went idle");
    std::this_thread::yield();
  }
  first->file().close();

  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  auto* second = new LockWait(p);
  CHECK_EQ(second->start(), 0);
  await_blocked(second);
  CHECK_EQ(interlock::wait_threads_alive(), 1);
  first->cancel();
  testutil::sleep_ms(20);
  CHECK(!second->done());
  CHECK_EQ(holder.unlock().error, 0);
  join_within(second, kPromptMs);
  CHECK_EQ(second->result.error, 0);
  CHECK_EQ(second->run_tid, first->run_tid);
  first->release();
  second->release();

  int64_t idle_since = monotonic_ns();
  await_threads(0, 2000);
  double lingered = ms_since(idle_since);
  std::printf("  idle wait thread exited after %.1f ms\n", lingered);
  CHECK_GE(lingered, 150.0);
}

TEST(many_waits_cancelled) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  constexpr int kWaits = 16;
  std::vector<LockWait*> waits;
  for (int i = 0; i < kWaits; ++i) {
    waits.push_back(new LockWait(p));
    CHECK_EQ(waits.back()->start(), 0);
  }
  for (LockWait* w : waits) await_blocked(w);
  CHECK_EQ(interlock::wait_threads_alive(), kWaits);
  int64_t start = monotonic_ns();
  for (LockWait* w : waits) w->cancel();
  for (LockWait* w : waits) {
    join_within(w, kPromptMs);
    CHECK_EQ(w->result.error, -ECANCELED);
    w->release();
  }
  std::printf("  %d cancels -> all returned: %.3f ms\n", kWaits, ms_since(start));
  await_destroyed(kWaits, kPromptMs);
  await_threads(0, 2000);
}

// The owner may let go first; the thread's reference keeps the wait alive
// until run() and finished() are over, and the last one frees it.
TEST(owner_releases_first) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  auto* w = new LockWait(p);
  CHECK_EQ(w->start(), 0);
  await_blocked(w);
  w->release();
  testutil::sleep_ms(10);
  CHECK_EQ(destroyed.load(), 0);
  CHECK_EQ(holder.unlock().error, 0);
  await_destroyed(1, kPromptMs);
  CHECK(!held(p));  // freed with its file
}

TEST(start_twice_and_join_unstarted) {
  TempDir dir;
  auto* idle = new LockWait(dir.file("a.lock"));
  idle->join();  // never started: returns at once
  CHECK(!idle->done());
  idle->release();
  auto* w = new LockWait(dir.file("a.lock"));
  CHECK_EQ(w->start(), 0);
  CHECK_EQ(w->start(), -EALREADY);
  join_within(w, kPromptMs);
  CHECK_EQ(w->result.error, 0);
  w->release();
  await_destroyed(2, kPromptMs);
}

// A thread with no Interrupter (here: as when RLIMIT_SIGPENDING leaves it no
// timer) has nothing to wake it out of flock(2): its waits must poll, so a
// deadline and a cancel still end them. Before, this blocked for ever.
TEST(thread_without_timer_polls) {
  CHECK(!interlock::Interrupter::bound_here());
  {
    interlock::Interrupter intr;
    CHECK_EQ(interlock::Interrupter::bound_here(), intr.ok());
  }
  CHECK(!interlock::Interrupter::bound_here());
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile holder(p, 0600, true);
  bool busy;
  CHECK_EQ(holder.try_lock(false, &busy).error, 0);
  LockFile waiter(p, 0600, true);
  int64_t start = monotonic_ns();
  CHECK_EQ(waiter.lock(false, nullptr, start + 50 * 1000000).error, -ETIMEDOUT);
  CHECK_LE(ms_since(start), 50 + kPromptMs);
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    testutil::sleep_ms(50);
    cancel.store(true);
  });
  start = monotonic_ns();
  CHECK_EQ(waiter.lock(false, &cancel, interlock::kNoDeadline).error, -ECANCELED);
  canceller.join();
  CHECK_LE(ms_since(start), 50 + kPromptMs);
}

TEST_MAIN()
