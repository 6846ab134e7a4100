// LockFile: opening rules, try_lock, and the unlink/rename race (a waiter
// granted a lock on an orphaned inode must move to the file now at the path).
#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include "flock.h"
#include "harness.h"
#include "interrupter.h"
#include "lock_file.h"
#include "util.h"

using interlock::kNoDeadline;
using interlock::LockFile;
using interlock::Status;
using testutil::inode_of_fd;
using testutil::inode_of_path;
using testutil::kPromptMs;
using testutil::TempDir;

namespace {

bool busy_for_other(const std::string& path, bool shared) {
  LockFile other(path, 0600, true);
  bool busy = false;
  Status st = other.try_lock(shared, &busy);
  if (!st.ok()) harness::fail(__FILE__, __LINE__, "try_lock failed: " + std::to_string(st.error));
  return busy;
}

// lock() on its own thread with an interrupter, cancellable like a Wait.
class LockThread {
 public:
  explicit LockThread(LockFile* file) : thread_([this, file] { run(file); }) {}
  ~LockThread() {
    if (thread_.joinable()) thread_.join();
  }
  void await_blocked() {
    while (tid_.load() == 0) std::this_thread::yield();
    testutil::await_blocked_in(tid_.load(), SYS_flock);
  }
  void cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_.store(true);
    if (intr_ != nullptr) intr_->fire_now();
  }
  Status join() {
    thread_.join();
    return result_;
  }

 private:
  void run(LockFile* file) {
    interlock::Interrupter intr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      intr_ = &intr;
    }
    tid_.store(testutil::thread_id());
    Status st = file->lock(false, &cancel_, kNoDeadline);
    std::lock_guard<std::mutex> lock(mu_);
    intr.disarm();
    intr_ = nullptr;
    result_ = st;
  }

  std::mutex mu_;
  std::atomic<bool> cancel_{false};
  std::atomic<pid_t> tid_{0};
  interlock::Interrupter* intr_ = nullptr;
  Status result_;
  std::thread thread_;  // last: starts once the fields above exist
};

}  // namespace

TEST(try_lock_busy) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true), b(p, 0600, true);
  bool busy = true;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(b.try_lock(false, &busy).error, 0);  // busy is an answer, not an error
  CHECK(busy);
  CHECK_EQ(b.try_lock(true, &busy).error, 0);
  CHECK(busy);
  CHECK_EQ(a.unlock().error, 0);
  CHECK_EQ(b.try_lock(false, &busy).error, 0);
  CHECK(!busy);
  CHECK(busy_for_other(p, true));
  CHECK_EQ(b.unlock().error, 0);
  CHECK_EQ(a.try_lock(true, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(b.try_lock(true, &busy).error, 0);
  CHECK(!busy);
  CHECK(busy_for_other(p, false));
  CHECK(!busy_for_other(p, true));
  a.close();
  b.close();
  CHECK(!busy_for_other(p, false));  // close drops the lock
}

TEST(open_rules) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  {
    LockFile f(p, 0640, true);
    mode_t old = umask(022);
    CHECK(f.open().ok());
    umask(old);
    struct stat st;
    CHECK_EQ(stat(p.c_str(), &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0640u);
    CHECK_EQ(fcntl(f.fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_EQ(fcntl(f.fd(), F_GETFL) & O_ACCMODE, O_RDWR);
  }
  {
    // Never truncated or written.
    int fd = testutil::open_rw(p);
    CHECK_EQ(write(fd, "keep", 4), 4);
    close(fd);
    LockFile f(p, 0600, true);
    bool busy;
    CHECK_EQ(f.try_lock(false, &busy).error, 0);
    f.close();
    struct stat st;
    CHECK_EQ(stat(p.c_str(), &st), 0);
    CHECK_EQ(st.st_size, 4);
  }
  LockFile missing(dir.file("missing"), 0600, false);
  Status st = missing.open();
  CHECK_EQ(st.error, -ENOENT);
  CHECK_EQ(std::string(st.syscall), "open");
  CHECK(!missing.is_open());

  CHECK_EQ(mkdir(dir.file("d").c_str(), 0700), 0);
  LockFile d(dir.file("d"), 0600, true);
  CHECK_EQ(d.open().error, -EISDIR);
  rmdir(dir.file("d").c_str());

  CHECK_EQ(symlink(p.c_str(), dir.file("link").c_str()), 0);
  LockFile link(dir.file("link"), 0600, true);
  CHECK_EQ(link.open().error, -ELOOP);

  // A FIFO must neither hang open() nor be "locked".
  CHECK_EQ(mkfifo(dir.file("fifo").c_str(), 0600), 0);
  LockFile fifo(dir.file("fifo"), 0600, true);
  bool busy;
  CHECK_EQ(fifo.try_lock(false, &busy).error, -EINVAL);
  CHECK(!fifo.is_open());
}

TEST(lock_timed_deadline_and_grant) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true), b(p, 0600, true);
  bool busy;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  int64_t start = interlock::monotonic_ns();
  Status st = b.lock_timed(false, interlock::deadline_after_ms(30));
  CHECK_EQ(st.error, -ETIMEDOUT);
  CHECK_GE(testutil::ms_since(start), 29.9);
  std::thread releaser([&a] {
    testutil::sleep_ms(20);
    a.unlock();
  });
  CHECK_EQ(b.lock_timed(false, interlock::deadline_after_ms(5000)).error, 0);
  releaser.join();
  CHECK(busy_for_other(p, true));
}

TEST(lock_cancelled) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true), b(p, 0600, true);
  bool busy;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  LockThread t(&b);
  t.await_blocked();
  t.cancel();
  CHECK_EQ(t.join().error, -ECANCELED);
  CHECK_EQ(a.unlock().error, 0);
  CHECK(!busy_for_other(p, false));  // the cancelled waiter holds nothing
}

// The holder unlinks the lock file (a cleaner) and then unlocks. The waiter
// is granted the orphaned inode; it must notice and lock the new file.
TEST(unlink_race_moves_waiter) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true), b(p, 0600, true);
  bool busy;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  LockThread t(&b);
  t.await_blocked();
  CHECK_EQ(unlink(p.c_str()), 0);
  CHECK_EQ(a.unlock().error, 0);
  CHECK_EQ(t.join().error, 0);
  CHECK_EQ(inode_of_fd(b.fd()), inode_of_path(p));
  CHECK(busy_for_other(p, false));  // a newcomer at the path is excluded
}

// Same with rename(2) over the path (an atomic replace).
TEST(rename_race_moves_waiter) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true), b(p, 0600, true);
  bool busy;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  LockThread t(&b);
  t.await_blocked();
  ino_t old_inode = inode_of_fd(a.fd());
  close(testutil::open_rw(dir.file("new")));
  CHECK_EQ(rename(dir.file("new").c_str(), p.c_str()), 0);
  CHECK_NE(inode_of_path(p), old_inode);
  CHECK_EQ(a.unlock().error, 0);
  CHECK_EQ(t.join().error, 0);
  CHECK_EQ(inode_of_fd(b.fd()), inode_of_path(p));
  CHECK(busy_for_other(p, false));
}

// try_lock on an fd whose file was unlinked since it was opened.
TEST(try_lock_reopens_unlinked) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true);
  CHECK(a.open().ok());
  CHECK_EQ(unlink(p.c_str()), 0);
  bool busy;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  CHECK(!busy);
  CHECK_EQ(inode_of_fd(a.fd()), inode_of_path(p));
  CHECK(busy_for_other(p, false));
}

// Without create, a waiter whose file was removed reports ENOENT.
TEST(unlink_race_without_create) {
  TempDir dir;
  std::string p = dir.file("a.lock");
  LockFile a(p, 0600, true), b(p, 0600, false);
  bool busy;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  LockThread t(&b);
  t.await_blocked();
  CHECK_EQ(unlink(p.c_str()), 0);
  CHECK_EQ(a.unlock().error, 0);
  Status st = t.join();
  CHECK_EQ(st.error, -ENOENT);
  CHECK_EQ(std::string(st.syscall), "open");
  CHECK(!b.is_open());
}

// Handoff turns (file_turns.cc): a waiter past kStarvingNs takes a turn in
// the marks; the holder's release and re-take (try_lock, or lock) cannot
// barge past it; the waiter gets the lock and its turn ends. A waiter that
// times out leaves no turn.
TEST(starving_waiter_takes_a_turn_and_the_holder_cannot_barge) {
  TempDir dir;
  std::string path = dir.file("turn.lock");
  LockFile a(path, 0600, true), b(path, 0600, true);
  interlock::FileMarks::Turns turns;
  bool busy = true;
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  CHECK(!busy);
  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    interlock::Interrupter intr;  // as on a wait thread
    std::atomic<bool> cancel{false};
    CHECK_EQ(b.lock(false, &cancel, kNoDeadline).error, 0);
    granted.store(true);
    CHECK_EQ(b.unlock().error, 0);
  });
  int64_t start = interlock::monotonic_ns();
  auto pending = [&] { return a.marks().pending_turn() != 0; };
  while (!pending() && testutil::ms_since(start) < 5000) testutil::sleep_ms(1);
  CHECK(pending());
  CHECK(interlock::FileMarks::peek_turns(path, &turns));
  CHECK(turns.handoff);
  CHECK_EQ(turns.handoffs, 1u);
  CHECK_EQ(a.unlock().error, 0);
  // The waiter's turn is pending or served: either way not ours to take.
  if (!granted.load()) {
    CHECK_EQ(a.try_lock(false, &busy).error, 0);
    if (!busy) {
      CHECK(granted.load());  // only once the waiter has had it
      CHECK_EQ(a.unlock().error, 0);
    }
  }
  CHECK_EQ(a.lock(false, nullptr, interlock::deadline_after_ms(10000)).error, 0);
  CHECK(granted.load());
  CHECK(!pending());
  CHECK_EQ(a.unlock().error, 0);
  waiter.join();

  // Held again; a starving waiter that times out ends its own turn.
  CHECK_EQ(a.try_lock(false, &busy).error, 0);
  CHECK(interlock::FileMarks::peek_turns(path, &turns));
  uint64_t before = turns.handoffs;  // ours above may have been one too
  std::thread timed([&] { CHECK_EQ(b.lock_timed(false, interlock::deadline_after_ms(200)).error, -ETIMEDOUT); });
  timed.join();
  CHECK(!pending());
  CHECK(interlock::FileMarks::peek_turns(path, &turns));
  CHECK_EQ(turns.handoffs, before + 1);
  CHECK_EQ(a.unlock().error, 0);
  unlink(path.c_str());
  interlock::FileMarks::prune("");
}

TEST_MAIN()
