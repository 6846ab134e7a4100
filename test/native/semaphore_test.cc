// Semaphore: counts and weights, timeouts and cancels of take(), the gate
// for heavy requests, owner death (a killed process's permits come back from
// the kernel, its record reports ownerDied once), teardown's abandoned
// records, refusals, and unlink removing the set.
#include "semaphore.h"

#include <signal.h>
#include <sys/sem.h>
#include <sys/wait.h>

#include <atomic>
#include <string>
#include <thread>

#include "harness.h"
#include "util.h"
#include "wait.h"

using interlock::ErrorKind;
using interlock::kNoDeadline;
using interlock::monotonic_ns;
using interlock::Permit;
using interlock::Semaphore;
using interlock::SemaphoreInfo;
using interlock::Status;
using testutil::kPromptMs;
using testutil::ms_since;

namespace {

// A /dev/shm name private to this process; its set and name go at the end.
class SemName {
 public:
  explicit SemName(const char* tag)
      : name_(std::string("interlock-native-sem-") + std::to_string(getpid()) + "-" + tag), path_("/dev/shm/" + name_) {
    Semaphore::unlink(name_);
    harness::cleanup_paths().push_back(path_);
  }
  ~SemName() {
    harness::forget_path(path_);
    Semaphore::unlink(name_);
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_, path_;
};

// take() on a dedicated wait thread, so cancel() wakes it with the interrupter.
class TakeWait : public interlock::Wait {
 public:
  TakeWait(Semaphore* sem, uint32_t weight) : sem_(sem), weight_(weight) {}
  Status result;

 private:
  void run() override { result = sem_->take(weight_, cancel_flag(), deadline()); }
  Semaphore* sem_;
  uint32_t weight_;
};

uint32_t available(Semaphore& s) {
  SemaphoreInfo info;
  CHECK_EQ(s.info(&info).error, 0);
  return info.available;
}

}  // namespace

TEST(counts_and_weights) {
  SemName n("count");
  Semaphore s;
  CHECK(s.open(n.name(), 3, 0600).ok());
  Permit a, b, c;
  bool busy = true;
  CHECK_EQ(s.try_lock(1, &a, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(s.try_lock(2, &b, &busy).error, 0);
  CHECK(!busy);
  CHECK(a.record != b.record);
  CHECK(b.grant.token > a.grant.token);
  CHECK_EQ(s.try_lock(1, &c, &busy).error, 0);
  CHECK(busy);
  SemaphoreInfo info;
  CHECK_EQ(s.info(&info).error, 0);
  CHECK_EQ(info.permits, 3u);
  CHECK_EQ(info.available, 0u);
  CHECK_EQ(info.holders.size(), 2u);
  CHECK_EQ(info.holders[0].pid, getpid());
  CHECK_EQ(s.unlock(b, true).error, 0);
  CHECK_EQ(available(s), 2u);
  CHECK_EQ(s.unlock(a, true).error, 0);
  CHECK_EQ(available(s), 3u);
}

TEST(refusals) {
  SemName n("refuse");
  Semaphore a, b;
  CHECK(a.open(n.name(), 2, 0600).ok());
  CHECK(b.open(n.name(), 3, 0600).kind == ErrorKind::kIncompatible);  // other permits
  CHECK(!b.mapped());
  CHECK_EQ(b.open(n.name(), 0, 0600).error, -EINVAL);
  CHECK_EQ(b.open(n.name(), interlock::kMaxPermits + 1, 0600).error, -EINVAL);
}

TEST(take_times_out_and_is_cancelled) {
  SemName n("timeout");
  Semaphore s;
  CHECK(s.open(n.name(), 2, 0600).ok());
  Permit all;
  bool busy = false;
  CHECK_EQ(s.try_lock(2, &all, &busy).error, 0);
  for (uint32_t weight : {1u, 2u}) {
    int64_t t0 = monotonic_ns();
    Status st = s.take(weight, nullptr, t0 + 30 * 1000000);
    CHECK_EQ(st.error, -ETIMEDOUT);
    CHECK(ms_since(t0) >= 29);
    CHECK(ms_since(t0) < 30 + kPromptMs);
  }
  for (uint32_t weight : {1u, 2u}) {
    auto* w = new TakeWait(&s, weight);
    CHECK_EQ(w->start(), 0);
    testutil::sleep_ms(20);
    int64_t t0 = monotonic_ns();
    w->cancel();
    w->join();
    CHECK(ms_since(t0) < kPromptMs);
    CHECK_EQ(w->result.error, -ECANCELED);
    w->release();
  }
  CHECK_EQ(available(s), 0u);  // nothing taken by the timed-out or cancelled waits
  Permit one;
  CHECK_EQ(s.unlock(all, true).error, 0);
  CHECK_EQ(s.try_lock(1, &one, &busy).error, 0);  // and the gate is open again
  CHECK(!busy);
  CHECK_EQ(s.unlock(one, true).error, 0);
}

TEST(heavy_waiter_shuts_the_gate) {
  SemName n("gate");
  Semaphore s;
  CHECK(s.open(n.name(), 2, 0600).ok());
  Permit one, other;
  bool busy = false;
  CHECK_EQ(s.try_lock(1, &one, &busy).error, 0);
  auto* heavy = new TakeWait(&s, 2);
  CHECK_EQ(heavy->start(), 0);
  testutil::sleep_ms(30);
  CHECK_EQ(available(s), 1u);
  CHECK_EQ(s.try_lock(1, &other, &busy).error, 0);
  CHECK(busy);  // one permit is free, but a heavier request waits for it
  CHECK_EQ(s.unlock(one, true).error, 0);
  heavy->join();
  CHECK_EQ(heavy->result.error, 0);
  heavy->release();
  CHECK_EQ(available(s), 0u);
  CHECK_EQ(s.give(2).error, 0);
  CHECK_EQ(s.try_lock(1, &other, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(s.unlock(other, true).error, 0);
}

TEST(killed_holder_permits_come_back_with_owner_died) {
  SemName n("death");
  int ready[2];
  CHECK_EQ(pipe(ready), 0);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    Semaphore s;
    Permit p;
    bool busy = false;
    if (!s.open(n.name(), 3, 0600).ok() || !s.try_lock(2, &p, &busy).ok() || busy) _exit(3);
    char c = 'x';
    if (write(ready[1], &c, 1) != 1) _exit(4);
    pause();
    _exit(0);
  }
  char c;
  CHECK_EQ(read(ready[0], &c, 1), 1);
  Semaphore s;
  CHECK(s.open(n.name(), 3, 0600).ok());
  CHECK_EQ(available(s), 1u);
  kill(child, SIGKILL);
  int64_t t0 = monotonic_ns();
  CHECK_EQ(s.take(3, nullptr, t0 + 5000LL * 1000000).error, 0);
  CHECK(ms_since(t0) < kPromptMs);
  Permit p;
  CHECK_EQ(s.claim(3, &p).error, 0);
  CHECK(p.grant.owner_died);
  CHECK_EQ(s.unlock(p, true).error, 0);
  bool busy = true;
  CHECK_EQ(s.try_lock(3, &p, &busy).error, 0);
  CHECK(!busy);
  CHECK(!p.grant.owner_died);  // reported once
  CHECK_EQ(s.unlock(p, true).error, 0);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
}

TEST(abandoned_record_is_reported_once) {
  SemName n("abandon");
  Semaphore s;
  CHECK(s.open(n.name(), 2, 0600).ok());
  Permit p;
  bool busy = false;
  CHECK_EQ(s.try_lock(1, &p, &busy).error, 0);
  CHECK_EQ(s.unlock(p, false).error, 0);  // as worker teardown does
  CHECK_EQ(available(s), 2u);
  SemaphoreInfo info;
  CHECK_EQ(s.info(&info).error, 0);
  CHECK_EQ(info.holders.size(), 0u);
  CHECK_EQ(s.try_lock(1, &p, &busy).error, 0);
  CHECK(p.grant.owner_died);
  CHECK_EQ(s.unlock(p, true).error, 0);
  CHECK_EQ(s.try_lock(1, &p, &busy).error, 0);
  CHECK(!p.grant.owner_died);
  CHECK_EQ(s.unlock(p, true).error, 0);
}

TEST(unlink_removes_the_set) {
  SemName n("unlink");
  Semaphore s;
  CHECK(s.open(n.name(), 1, 0600).ok());
  Permit p;
  bool busy = false;
  CHECK_EQ(s.try_lock(1, &p, &busy).error, 0);
  auto* w = new TakeWait(&s, 1);
  CHECK_EQ(w->start(), 0);
  testutil::sleep_ms(20);
  CHECK_EQ(Semaphore::unlink(n.name()).error, 0);
  w->join();
  CHECK_EQ(w->result.error, -EIDRM);
  w->release();
  CHECK_EQ(s.unlock(p, true).error, 0);  // nothing to give back to
  Semaphore again;
  CHECK(again.open(n.name(), 1, 0600).ok());  // a new region and set
  CHECK_EQ(Semaphore::unlink(n.name()).error, 0);
  CHECK_EQ(Semaphore::unlink(n.name()).error, -ENOENT);
}

TEST_MAIN()
