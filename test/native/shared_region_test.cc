// SharedRegion: creation and the init race between processes, refusal of
// foreign regions, waits (cancel, deadline, grant), and owner death.
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "shared_region.h"
#include "util.h"

using interlock::ErrorKind;
using interlock::Grant;
using interlock::kNoDeadline;
using interlock::monotonic_ns;
using interlock::RegionFile;
using interlock::RegionKind;
using interlock::RegionSpec;
using interlock::SharedRegion;
using interlock::Status;
using testutil::kPromptMs;
using testutil::ms_since;
using testutil::ShmName;

namespace {

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK_GE(fd, 0);
  CHECK_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
}

template <typename Fn>
pid_t fork_child(Fn fn) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) harness::fail(__FILE__, __LINE__, "fork");
  if (pid == 0) {
    fn();
    _exit(0);
  }
  return pid;
}

int exit_code(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void wait_byte(int fd) {
  char c;
  if (read(fd, &c, 1) != 1) harness::fail(__FILE__, __LINE__, "child never signalled");
}

void send_byte(int fd) {
  char c = 'x';
  if (write(fd, &c, 1) != 1) _exit(9);
}

}  // namespace

TEST(create_and_share) {
  ShmName n("share");
  SharedRegion a, b;
  mode_t old = umask(0);
  CHECK(a.open(n.name(), 100, 0640).ok());
  umask(old);
  CHECK(a.mapped());
  CHECK_EQ(a.data_size(), 100u);
  CHECK_EQ(a.header()->ready.load(), 1u);
  CHECK_EQ(std::string(a.header()->abi), SharedRegion::abi_tag());
  CHECK_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
  struct stat st;
  CHECK_EQ(stat(n.path().c_str(), &st), 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK_EQ(st.st_mode & 0777, 0640u);
  CHECK_EQ(static_cast<uint64_t>(st.st_size), SharedRegion::region_size(100));

  CHECK(b.open(n.name(), 100, 0600).ok());
  CHECK(a.data() != b.data());  // two mappings...
  for (int i = 0; i < 100; ++i) a.data()[i] = static_cast<uint8_t>(i * 7);
  for (int i = 0; i < 100; ++i) CHECK_EQ(b.data()[i], static_cast<uint8_t>(i * 7));  // ...one memory

  SharedRegion::Snapshot snap;
  CHECK(SharedRegion::peek(n.name(), &snap).ok());
  CHECK(snap.ready);
  CHECK(!snap.dirty);
  CHECK_EQ(snap.data_size, 100u);
  CHECK_EQ(snap.token, 0u);
  CHECK_EQ(std::string(snap.abi), SharedRegion::abi_tag());
}

TEST(foreign_regions_refused) {
  ShmName n("foreign");
  SharedRegion a, b;
  CHECK(a.open(n.name(), 16, 0600).ok());
  Status st = b.open(n.name(), 32, 0600);  // another data size
  CHECK(st.kind == ErrorKind::kIncompatible);
  CHECK_EQ(std::string(st.syscall), "open");
  CHECK(!b.mapped());

  std::strncpy(a.header()->abi, "musl/x86_64/m40/l8", sizeof(a.header()->abi));  // another libc
  CHECK(b.open(n.name(), 16, 0600).kind == ErrorKind::kIncompatible);
  a.unmap();

  ShmName g("garbage");
  write_file(g.path(), std::vector<uint8_t>(SharedRegion::region_size(16), 0xab));
  CHECK(b.open(g.name(), 16, 0600).kind == ErrorKind::kIncompatible);
  SharedRegion::Snapshot snap;
  CHECK(SharedRegion::peek(g.name(), &snap).kind == ErrorKind::kIncompatible);
  int fd = ::open(g.path().c_str(), O_RDONLY);
  uint8_t first = 0;
  CHECK_EQ(read(fd, &first, 1), 1);
  close(fd);
  CHECK_EQ(first, 0xab);  // refused, not overwritten

  ShmName d("dir");
  CHECK_EQ(mkdir(d.path().c_str(), 0700), 0);
  CHECK_EQ(b.open(d.name(), 16, 0600).error, -EISDIR);

  ShmName l("link");
  CHECK_EQ(symlink(g.path().c_str(), l.path().c_str()), 0);
  CHECK_EQ(b.open(l.name(), 16, 0600).error, -ELOOP);
  CHECK_EQ(SharedRegion::peek("interlock-native-missing", &snap).error, -ENOENT);
}

// Another kind reuses RegionFile with its own state: its init runs once, at
// creation, and a region of one kind is never opened as the other.
TEST(kinds_share_the_machinery_but_not_regions) {
  struct Counter {
    uint64_t value;
  };
  ShmName n("kind");
  RegionSpec spec{RegionKind::kSemaphore, sizeof(Counter), 8, 0600, false};
  auto init = [](void* state, void* arg) {
    static_cast<Counter*>(state)->value = *static_cast<uint64_t*>(arg);
    return Status{};
  };
  uint64_t five = 5, six = 6;
  RegionFile a, b;
  CHECK(a.open(n.name(), spec, init, &five).ok());
  CHECK(b.open(n.name(), spec, init, &six).ok());  // already made: no init
  CHECK_EQ(static_cast<Counter*>(b.state())->value, 5u);
  CHECK_EQ(b.data_size(), 8u);
  SharedRegion m;
  CHECK(m.open(n.name(), 8, 0600).kind == ErrorKind::kOtherKind);
  SharedRegion::Snapshot snap;
  CHECK(SharedRegion::peek(n.name(), &snap).kind == ErrorKind::kOtherKind);
  ShmName mutex("kind-mutex");
  CHECK(m.open(mutex.name(), 8, 0600).ok());
  CHECK(b.open(mutex.name(), spec, init, &six).kind == ErrorKind::kOtherKind);
}

// A crash can leave the file all zero (after ftruncate) or with a header but
// no ready flag; the next opener must make it afresh.
TEST(half_made_regions_are_redone) {
  ShmName n("half");
  SharedRegion r;
  write_file(n.path(), std::vector<uint8_t>(SharedRegion::region_size(16), 0));
  CHECK(r.open(n.name(), 16, 0600).ok());
  r.unmap();

  write_file(n.path(), std::vector<uint8_t>(SharedRegion::region_size(16) + 4096, 0));  // zero, wrong size
  CHECK(r.open(n.name(), 16, 0600).ok());
  struct stat st;
  CHECK_EQ(stat(n.path().c_str(), &st), 0);
  CHECK_EQ(static_cast<uint64_t>(st.st_size), SharedRegion::region_size(16));

  Grant g;
  bool busy;
  for (int i = 0; i < 3; ++i) {
    CHECK_EQ(r.try_lock(&g, &busy).error, 0);
    CHECK_EQ(r.unlock(true).error, 0);
  }
  CHECK_EQ(g.token, 3u);
  // Header written, mutex garbage, never marked ready: redone from zero.
  r.header()->ready.store(0);
  std::memset(static_cast<void*>(&r.state()->mutex), 0xff, sizeof(pthread_mutex_t));
  r.unmap();
  CHECK(r.open(n.name(), 16, 0600).ok());
  CHECK_EQ(r.state()->token.load(), 0u);
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(g.token, 1u);
  CHECK_EQ(r.unlock(true).error, 0);
}

// The creator dies while initialising under flock: an opener waiting on that
// flock gets in when the kernel drops it, and redoes the region.
TEST(crash_mid_init_is_redone_by_next_opener) {
  ShmName n("crash");
  uint8_t first[16];  // magic, layout version, kind: a creator's first stores
  {
    ShmName model("model");
    SharedRegion m;
    CHECK(m.open(model.name(), 16, 0600).ok());
    std::memcpy(first, m.header(), sizeof(first));
  }
  int ready[2];
  CHECK_EQ(pipe(ready), 0);
  pid_t child = fork_child([&] {
    int fd = ::open(n.path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(3);
    if (ftruncate(fd, static_cast<off_t>(SharedRegion::region_size(16))) != 0) _exit(4);
    if (pwrite(fd, first, sizeof(first), 0) != sizeof(first)) _exit(5);
    send_byte(ready[1]);
    for (;;) pause();
  });
  wait_byte(ready[0]);
  std::atomic<pid_t> tid{0};
  Status opened;
  SharedRegion r;
  std::thread opener([&] {
    tid.store(testutil::thread_id());
    opened = r.open(n.name(), 16, 0600);
  });
  while (tid.load() == 0) std::this_thread::yield();
  testutil::await_blocked_in(tid.load(), SYS_flock);
  CHECK_EQ(kill(child, SIGKILL), 0);
  CHECK_EQ(exit_code(child), 128 + SIGKILL);
  opener.join();
  CHECK_EQ(opened.error, 0);
  CHECK_EQ(r.header()->ready.load(), 1u);
  Grant g;
  bool busy;
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  CHECK(!busy);
  CHECK(!g.owner_died);
  CHECK_EQ(r.unlock(true).error, 0);
  close(ready[0]), close(ready[1]);
}

TEST(try_lock_busy_tokens_and_holder) {
  ShmName n("try");
  SharedRegion a, b;
  CHECK(a.open(n.name(), 0, 0600).ok());
  CHECK(b.open(n.name(), 0, 0600).ok());
  Grant g;
  bool busy = true;
  CHECK_EQ(a.try_lock(&g, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(g.token, 1u);
  CHECK(!g.owner_died);
  SharedRegion::Snapshot snap;
  CHECK(SharedRegion::peek(n.name(), &snap).ok());
  CHECK_EQ(snap.holder_pid, getpid());
  CHECK_EQ(snap.holder_tid, testutil::thread_id());
  CHECK(snap.dirty);
  std::thread other([&] {
    Grant g2;
    bool busy2 = false;
    CHECK_EQ(b.try_lock(&g2, &busy2).error, 0);
    CHECK(busy2);
  });
  other.join();
  CHECK_EQ(a.unlock(true).error, 0);
  CHECK(SharedRegion::peek(n.name(), &snap).ok());
  CHECK_EQ(snap.holder_pid, 0);
  CHECK(!snap.dirty);
  std::thread next([&] {
    Grant g2;
    bool busy2 = true;
    CHECK_EQ(b.try_lock(&g2, &busy2).error, 0);
    CHECK(!busy2);
    CHECK_EQ(g2.token, 2u);
    CHECK_EQ(b.unlock(true).error, 0);
  });
  next.join();
}

// Handoff mode: a waiter past kStarvingNs takes a turn; the holder's
// release and re-take (try_lock, or lock) cannot barge past it; the waiter
// gets the mutex and its turn ends. A waiter that times out leaves no turn.
TEST(starving_waiter_takes_a_turn_and_the_holder_cannot_barge) {
  ShmName n("turn");
  SharedRegion a, b;
  CHECK_EQ(a.open(n.name(), 0, 0600).error, 0);
  CHECK_EQ(b.open(n.name(), 0, 0600).error, 0);
  Grant g;
  bool busy = true;
  CHECK_EQ(a.try_lock(&g, &busy).error, 0);
  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    Grant g2;
    std::atomic<bool> cancel{false};
    CHECK_EQ(b.lock(&g2, &cancel, interlock::deadline_after_ms(10000)).error, 0);
    granted.store(true);
    CHECK_EQ(b.unlock(true).error, 0);
  });
  int64_t start = monotonic_ns();
  while (!a.snapshot().handoff && ms_since(start) < 5000) testutil::sleep_ms(1);
  CHECK(a.snapshot().handoff);
  CHECK_EQ(a.snapshot().handoffs, 1u);
  CHECK_EQ(a.unlock(true).error, 0);
  // The waiter's turn is pending or served: either way not ours to take.
  if (!granted.load()) {
    Grant again;
    bool busy2 = false;
    CHECK_EQ(a.try_lock(&again, &busy2).error, 0);
    if (!busy2) {
      CHECK(granted.load());  // only once the waiter has had it
      CHECK_EQ(a.unlock(true).error, 0);
    }
  }
  CHECK_EQ(a.lock(&g, nullptr, interlock::deadline_after_ms(10000)).error, 0);
  CHECK(granted.load());
  CHECK(!a.snapshot().handoff);
  CHECK_EQ(a.unlock(true).error, 0);
  waiter.join();

  // Held again; a starving waiter that times out ends its own turn.
  CHECK_EQ(a.try_lock(&g, &busy).error, 0);
  uint64_t turns = a.snapshot().handoffs;  // ours above may have been one too
  std::thread timed([&] {
    Grant g2;
    CHECK_EQ(b.lock(&g2, nullptr, interlock::deadline_after_ms(200)).error, -ETIMEDOUT);
  });
  timed.join();
  CHECK(!a.snapshot().handoff);
  CHECK_EQ(a.snapshot().handoffs, turns + 1);
  CHECK_EQ(a.unlock(true).error, 0);
}

// An error-checking mutex: the holder relocking gets EDEADLK at once, from
// lock and try_lock alike, and only the holder can unlock.
TEST(relock_and_foreign_unlock_are_errors) {
  ShmName n("errs");
  SharedRegion r;
  CHECK(r.open(n.name(), 0, 0600).ok());
  Grant g;
  bool busy = false;
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  Status again = r.try_lock(&g, &busy);  // glibc: EDEADLK, not EBUSY, for the owner
  CHECK_EQ(again.error, -EDEADLK);
  CHECK_EQ(std::string(again.syscall), "pthread_mutex_trylock");
  int64_t start = monotonic_ns();
  Status st = r.lock(&g, nullptr, interlock::deadline_after_ms(5000));
  CHECK_EQ(st.error, -EDEADLK);
  CHECK_LE(ms_since(start), kPromptMs);
#if !defined(__SANITIZE_THREAD__)  // TSan rightly reports this deliberate misuse
  std::thread other([&] {
    Status u = r.unlock(true);
    CHECK_EQ(u.error, -EPERM);
    CHECK_EQ(std::string(u.syscall), "pthread_mutex_unlock");
  });
  other.join();
#endif
  CHECK_EQ(r.unlock(true).error, 0);
}

TEST(lock_cancel_deadline_grant) {
  ShmName n("wait");
  SharedRegion a, b;
  CHECK(a.open(n.name(), 0, 0600).ok());
  CHECK(b.open(n.name(), 0, 0600).ok());
  Grant g;
  bool busy;
  CHECK_EQ(a.try_lock(&g, &busy).error, 0);

  std::vector<double> latency;
  for (int round = 0; round < 10; ++round) {
    std::atomic<bool> cancel{false};
    Status st;
    int64_t ended = 0;
    std::thread t([&] {
      Grant g2;
      st = b.lock(&g2, &cancel, kNoDeadline);
      ended = monotonic_ns();
    });
    testutil::sleep_ms(10);
    int64_t sent = monotonic_ns();
    cancel.store(true);
    t.join();
    CHECK_EQ(st.error, -ECANCELED);
    latency.push_back(static_cast<double>(ended - sent) / 1e6);
  }
  CHECK_LE(testutil::report_latency("cancel -> SharedRegion::lock returns", latency), kPromptMs);

  std::thread timed([&] {
    Grant g2;
    int64_t start = monotonic_ns();
    Status st = b.lock(&g2, nullptr, interlock::deadline_after_ms(50));
    double took = ms_since(start);
    CHECK_EQ(st.error, -ETIMEDOUT);
    CHECK_EQ(std::string(st.syscall), "pthread_mutex_lock");
    CHECK_GE(took, 49.9);
    CHECK_LE(took, 50 + kPromptMs);
  });
  timed.join();

  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    Grant g2;
    std::atomic<bool> cancel{false};
    CHECK_EQ(b.lock(&g2, &cancel, interlock::deadline_after_ms(10000)).error, 0);
    CHECK_EQ(g2.token, 2u);
    CHECK(!g2.owner_died);
    granted.store(true);
    CHECK_EQ(b.unlock(true).error, 0);
  });
  testutil::sleep_ms(20);
  CHECK(!granted.load());
  CHECK_EQ(a.unlock(true).error, 0);
  waiter.join();
  CHECK(granted.load());
}

// Waits without cancel or deadline sleep in 2 s slices on the lock word, so a
// lost wake-up shows as a wait of about 2 s. The one to guard against: a
// waiter that takes the mutex after sleeping stores its bare TID (trylock), so
// unless it sets FUTEX_WAITERS again its unlock wakes none of the sleepers
// still queued. Without that, runs here waited 2.0 s (the case failed) in 4
// of 9 runs and 0.3-0.7 s in most others; with it, at most 120 ms at a load
// of 15 on 2 CPUs (plain, ASan and TSan builds).
TEST(every_sleeper_is_woken) {
  ShmName n("sleepers");
  SharedRegion r;
  CHECK(r.open(n.name(), 0, 0600).ok());
  constexpr int kThreads = 6;
  std::vector<double> worst(kThreads, 0);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) sched_yield();  // all contend from the start
      for (int i = 0; i < 3000; ++i) {
        Grant g;
        int64_t start = monotonic_ns();
        CHECK_EQ(r.lock(&g, nullptr, kNoDeadline).error, 0);
        worst[t] = std::max(worst[t], ms_since(start));
        int64_t until = monotonic_ns() + 20 * 1000;  // hold 20 us, so others sleep
        while (monotonic_ns() < until) {
        }
        CHECK_EQ(r.unlock(true).error, 0);
        if (i % 7 == 0) sched_yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  double longest = *std::max_element(worst.begin(), worst.end());
  std::printf("  longest wait of %d threads: %.1f ms\n", kThreads, longest);
  CHECK_LE(longest, 4 * kPromptMs);  // a lost wake-up: ~2000 ms
}

// A holder process killed mid-hold: the next acquirer is told, once.
TEST(owner_death_process) {
  ShmName n("death");
  int ready[2];
  CHECK_EQ(pipe(ready), 0);
  pid_t child = fork_child([&] {
    SharedRegion r;
    Grant g;
    bool busy;
    if (!r.open(n.name(), 8, 0600).ok() || !r.try_lock(&g, &busy).ok() || busy) _exit(3);
    r.data()[0] = 42;  // "half-updated state"
    send_byte(ready[1]);
    for (;;) pause();
  });
  wait_byte(ready[0]);
  SharedRegion r;
  CHECK(r.open(n.name(), 8, 0600).ok());
  Grant g;
  bool busy;
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  CHECK(busy);
  Status st;
  int64_t granted_at = 0;
  std::thread waiter([&] {
    std::atomic<bool> cancel{false};
    st = r.lock(&g, &cancel, kNoDeadline);
    granted_at = monotonic_ns();
    if (st.ok()) r.unlock(true);
  });
  testutil::sleep_ms(20);
  int64_t killed = monotonic_ns();
  CHECK_EQ(kill(child, SIGKILL), 0);
  CHECK_EQ(exit_code(child), 128 + SIGKILL);
  waiter.join();
  CHECK_EQ(st.error, 0);
  CHECK(g.owner_died);
  CHECK_EQ(g.token, 2u);
  CHECK_EQ(r.data()[0], 42);
  std::printf("  SIGKILL of the holder -> grant with ownerDied: %.3f ms\n",
              static_cast<double>(granted_at - killed) / 1e6);
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);  // repaired by the clean release
  CHECK(!busy);
  CHECK(!g.owner_died);
  CHECK_EQ(r.unlock(true).error, 0);
  close(ready[0]), close(ready[1]);
}

// A thread that exits holding the mutex (robust list) and a holder torn down
// without a clean release (dirty flag) both show up as ownerDied.
TEST(owner_death_thread_and_dirty_release) {
  ShmName n("thread");
  SharedRegion r;
  CHECK(r.open(n.name(), 0, 0600).ok());
  std::thread quitter([&] {
    Grant g;
    bool busy;
    CHECK_EQ(r.try_lock(&g, &busy).error, 0);
    CHECK(!busy);
  });
  quitter.join();
  Grant g;
  bool busy;
  // owner_death_process covers EOWNERDEAD through lock().
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  CHECK(!busy);
  CHECK(g.owner_died);
  CHECK_EQ(r.unlock(false).error, 0);
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  CHECK(g.owner_died);
  CHECK_EQ(r.unlock(true).error, 0);
  CHECK_EQ(r.try_lock(&g, &busy).error, 0);
  CHECK(!g.owner_died);
  CHECK_EQ(r.unlock(true).error, 0);
}

namespace {

// Children released together open a region nobody has created yet, then
// bump a shared counter with a read-yield-write under the mutex (or without
// it, for the control). Returns the final count.
uint64_t race_children(const std::string& name, bool locked, int children, int rounds) {
  int gate[2];
  CHECK_EQ(pipe(gate), 0);
  std::vector<pid_t> pids;
  for (int c = 0; c < children; ++c) {
    pids.push_back(fork_child([&] {
      close(gate[1]);
      char x;
      if (read(gate[0], &x, 1) != 0) _exit(2);  // EOF is the start signal
      SharedRegion r;
      if (!r.open(name, sizeof(uint64_t), 0600).ok()) _exit(3);
      uint64_t last_token = 0;
      for (int i = 0; i < rounds; ++i) {
        Grant g;
        if (locked) {
          if (!r.lock(&g, nullptr, interlock::deadline_after_ms(20000)).ok()) _exit(4);
          if (g.owner_died || g.token <= last_token) _exit(5);
          last_token = g.token;
        }
        volatile uint64_t* counter = reinterpret_cast<uint64_t*>(r.data());
        uint64_t v = *counter;
        sched_yield();
        *counter = v + 1;
        if (locked && !r.unlock(true).ok()) _exit(6);
      }
    }));
  }
  close(gate[0]);
  close(gate[1]);
  for (pid_t p : pids) CHECK_EQ(exit_code(p), 0);
  SharedRegion r;
  CHECK(r.open(name, sizeof(uint64_t), 0600).ok());
  uint64_t count;
  std::memcpy(&count, r.data(), sizeof(count));
  if (locked) CHECK_EQ(r.state()->token.load(), static_cast<uint64_t>(children) * rounds);
  return count;
}

}  // namespace

TEST(init_race_forked_processes) {
  constexpr int kChildren = 6, kRounds = 300;
  uint64_t want = static_cast<uint64_t>(kChildren) * kRounds;
  for (int attempt = 0; attempt < 3; ++attempt) {
    ShmName n(("race" + std::to_string(attempt)).c_str());
    CHECK_EQ(race_children(n.name(), true, kChildren, kRounds), want);
  }
  // Control: the same without the mutex loses updates, so the check above
  // can see a broken lock (or a region initialised twice).
  ShmName c("control");
  uint64_t unlocked = race_children(c.name(), false, kChildren, kRounds);
  std::printf("  control without the mutex: %llu of %llu increments kept\n", static_cast<unsigned long long>(unlocked),
              static_cast<unsigned long long>(want));
  CHECK_LT(unlocked, want);
}

TEST_MAIN()
