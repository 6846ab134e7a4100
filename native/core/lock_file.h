// A lock file: the path, the fd this thread opened on it, and the inode that
// fd refers to. No Node-API here; the binding wraps one per JS thread and path.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "status.h"

namespace interlock {

class LockFile {
 public:
  LockFile(std::string path, int mode, bool create) : path_(std::move(path)), mode_(mode), create_(create) {}
  ~LockFile() { close(); }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  // O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW, never truncated or written.
  Status open();
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // Takes the lock without waiting. `*busy` is set when another holder has
  // it. On success the fd is known to still be the file at `path`.
  Status try_lock(bool shared, bool* busy);
  // Blocks until granted, cancelled or past the deadline (see flock_until).
  Status lock(bool shared, const std::atomic<bool>* cancel, int64_t deadline_ns);
  // lock() on the calling thread with a timeout (for acquireSync).
  Status lock_timed(bool shared, int64_t deadline_ns);
  Status unlock();
  void close();

 private:
  enum class Check { kSame, kReplaced };
  // Whether the locked inode is still the file at `path` (see lock_file.cc).
  Status verify(Check* out);
  template <typename Flock>
  Status lock_loop(int op, bool* busy, Flock&& do_flock);

  std::string path_;
  int mode_;
  bool create_;
  int fd_ = -1;
  bool checked_ = false;      // the path lookup's answer is cached
  timespec checked_ctime_{};  // ...for as long as the inode's ctime is this
  static constexpr int64_t kCtimeSettleNs = 100 * 1000 * 1000;
};

}  // namespace interlock
