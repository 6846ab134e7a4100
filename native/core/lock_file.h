// A lock file: the path, the fd this thread opened on it, and the inode that
// fd refers to. No Node-API here; the binding wraps one per JS thread and path.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "file_marks.h"
#include "primitive.h"
#include "status.h"

namespace interlock {

// open() fails with ErrorKind::kUnsafeFilesystem for a file on a filesystem
// where flock(2) may not exclude (see unsafe_filesystem_name); fs_type() then
// says which.

// The name of a filesystem type (statfs f_type) on which flock(2) may not
// exclude other holders: network and FUSE-like filesystems. nullptr if local.
const char* unsafe_filesystem_name(long f_type);
// fstatfs(2)'s f_type of `fd` (or the type set for testing).
Status filesystem_type(int fd, long* f_type);

// Tests only: open() sees this f_type instead of the real one (0: off).
void set_fs_type_for_testing(long f_type);

class LockFile {
 public:
  LockFile(std::string path, int mode, bool create, bool allow_unsafe = false)
      : path_(std::move(path)), mode_(mode), create_(create), allow_unsafe_(allow_unsafe) {}
  ~LockFile() { close(); }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  // O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW, never truncated or written; an
  // existing file we may only read is opened O_RDONLY (flock needs no write).
  Status open();
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // The file the last open() reached, which identifies the lock whatever
  // name it was reached by; and its filesystem type.
  dev_t dev() const { return dev_; }
  ino_t ino() const { return ino_; }
  long fs_type() const { return fs_type_; }
  const std::string& path() const { return path_; }

  // Takes the lock without waiting. `*busy` is set when another holder has
  // it, or a starving waiter's turn is pending (handoff mode, file_turns.cc).
  // On success the fd is known to still be the file at `path`, and
  // grant() says what the marks say (see file_marks.h).
  Status try_lock(bool shared, bool* busy);
  // Blocks until granted, cancelled or past the deadline (see flock_until),
  // on a wait thread (its Interrupter is armed for the deadline). `since_ns`
  // (CLOCK_MONOTONIC, 0: now): when the wait began, for handoff turns.
  Status lock(bool shared, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t since_ns = 0);
  // lock() on the calling thread with a timeout (for acquireSync).
  Status lock_timed(bool shared, int64_t deadline_ns, int64_t since_ns = 0);
  // `clean`: the holder is done (its mark is cleared). Not clean: nobody used
  // the grant, so owner-death news it took stays for the next holder.
  Status unlock(bool clean = true);
  // Drops the lock with the fd and leaves the marks as they are: the next
  // holder hears that this one did not release (teardown, close() while held).
  void close();

  // The last grant's token and owner-death news (token 0: no marks).
  const Grant& grant() const { return grant_; }
  const FileMarks& marks() const { return marks_; }

  // The primitive interface (primitive.h): flock is held by the open file
  // description, not by a thread, so a won wait needs no parked thread.
  using Held = Grant;
  static constexpr bool kParks = false;
  static constexpr const char* kCall = "flock";
  Status try_lock(const Request& r, Grant* g, bool* busy) {
    Status s = try_lock(r.shared, busy);  // before *busy is read
    return granted(s, g, *busy);
  }
  Status lock(const Request& r, Grant* g, const std::atomic<bool>* cancel, int64_t deadline_ns) {
    return granted(lock(r.shared, cancel, deadline_ns, r.since_ns), g);
  }
  Status lock_timed(const Request& r, Grant* g, int64_t deadline_ns) {
    return granted(lock_timed(r.shared, deadline_ns, r.since_ns), g);
  }
  Status adopt(const Request&, Grant*) { return Status{}; }
  void undo(const Request&, const Grant&) { unlock(false); }

 private:
  Status granted(Status s, Grant* g, bool busy = false) {
    if (s.ok() && !busy) *g = grant_;
    return s;
  }
  enum class Check { kSame, kReplaced };
  // Whether the locked inode is still the file at `path` (see lock_file.cc).
  Status verify(Check* out);
  // After flock(op) was granted on fd_: keeps it (kHeld) if the file is
  // still at `path` and no other waiter's turn is pending (`me`: the
  // caller's turn id, 0 for none); else lets it go: kTurn, or kReplaced
  // (then closed, to be reopened).
  enum class Taken { kHeld, kTurn, kReplaced };
  Status take(int op, uint64_t me, Taken* out);
  // A blocking wait with handoff turns; `block(fd, op, wake_ns)` blocks in
  // flock until granted or the deadline, or -ETIMEDOUT at wake_ns.
  template <typename Block>
  Status wait(bool shared, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t since_ns, Block&& block);

  std::string path_;
  int mode_;
  bool create_;
  bool allow_unsafe_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  long fs_type_ = 0;
  bool checked_ = false;      // the path lookup's answer is cached
  timespec checked_ctime_{};  // ...for as long as the inode's ctime is this
  enum class Holding { kNone, kExclusive, kShared };
  Holding holding_ = Holding::kNone;
  Grant grant_;
  FileMarks marks_;
  static constexpr int64_t kCtimeSettleNs = 100 * 1000 * 1000;
};

}  // namespace interlock
