#include "lock_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "flock.h"
#include "shared_region.h"  // kStarvingNs
#include "turn.h"

namespace interlock {
namespace {

std::atomic<long> fs_type_for_testing{0};

// How long a waiter parks behind another's turn before it looks again (is
// that turn stale?); a cancel or deadline tick wakes it sooner.
constexpr int64_t kDeferSliceNs = 10 * 1000 * 1000;

// open(2) across EINTR.
int open_retrying(const char* path, int flags, int mode) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// lstat through syscall(2): glibc exports its stat functions as symbols only
// since 2.33, and prebuilds must load on 2.28 (see glibc_compat.h for fstat).
// The kernel's struct stat is glibc's on x86_64 and aarch64.
int lstat_path(const char* path, struct stat* st) {
  return static_cast<int>(syscall(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW));
}

}  // namespace

const char* unsafe_filesystem_name(long f_type) {
  // From statfs(2) and <linux/magic.h>: filesystems whose flock(2) is
  // emulated, forwarded to a server or a user-space daemon, or local to one
  // client, so two holders on different clients (or containers) may coexist.
  switch (static_cast<uint32_t>(f_type)) {
    case 0x6969:
      return "nfs";
    case 0x517B:
      return "smb";
    case 0xFF534D42:
      return "cifs";
    case 0xFE534D42:
      return "smb2";
    case 0x65735546:
      return "fuse";  // also virtiofs, sshfs, glusterfs, bindfs
    case 0x01021997:
      return "9p";
    case 0x00C36400:
      return "ceph";
    case 0x5346414F:
    case 0x6B414653:
      return "afs";
    case 0x73757245:
      return "coda";
    case 0x564C:
      return "ncp";
    case 0x01161970:
      return "gfs2";
    case 0x7461636F:
      return "ocfs2";
    case 0x0BD00BD0:
      return "lustre";
    case 0x47504653:
      return "gpfs";
    case 0x20030528:
      return "orangefs";
    case 0x786F4256:
      return "vboxsf";
    default:
      return nullptr;
  }
}

Status filesystem_type(int fd, long* f_type) {
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return Status::fail("fstatfs");
  long injected = fs_type_for_testing.load(std::memory_order_relaxed);
  *f_type = injected != 0 ? injected : static_cast<long>(fs.f_type);
  return Status{};
}

void set_fs_type_for_testing(long f_type) { fs_type_for_testing.store(f_type, std::memory_order_relaxed); }

Status LockFile::open() {
  close();
  int flags = O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
  int fd = open_retrying(path_.c_str(), flags | O_RDWR | (create_ ? O_CREAT : 0), mode_);
  if (fd < 0 && (errno == EACCES || errno == EROFS)) {
    // flock(2) needs no write access: a file we may only read still locks.
    // A missing file stays the first error (we could not have created it).
    int denied = errno;
    fd = open_retrying(path_.c_str(), flags | O_RDONLY, 0);
    if (fd < 0 && errno == ENOENT) errno = denied;
  }
  if (fd < 0) return Status::fail("open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    Status s = Status::fail("fstat");
    ::close(fd);
    return s;
  }
  // O_NONBLOCK keeps open() of a FIFO from hanging; anything but a regular
  // file is refused so a swapped-in FIFO or device is never "locked".
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status{S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, "open"};
  }
  Status fs = filesystem_type(fd, &fs_type_);
  if (!fs.ok()) {
    ::close(fd);
    return fs;
  }
  if (!allow_unsafe_ && unsafe_filesystem_name(fs_type_) != nullptr) {
    ::close(fd);
    return Status{ErrorKind::kUnsafeFilesystem, "fstatfs"};
  }
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  marks_.open(fd, st, path_);
  return Status{};
}

Status LockFile::verify(Check* out) {
  // After every grant: is the locked inode still the file at `path`? A file
  // unlinked, renamed over or renamed away while we waited locks nothing
  // that later openers of the path will see. The full answer needs a path
  // lookup (lstat, ~2.5x an fstat here), so it is cached: our inode's ctime
  // moves whenever it is unlinked, renamed or linked, and until it moves the
  // last lookup's answer stands. An fstat per grant is the steady cost.
  struct stat st;
  if (fstat(fd_, &st) != 0) return Status::fail("fstat");
  if (st.st_nlink == 0) {
    *out = Check::kReplaced;
    return Status{};
  }
  if (checked_ && st.st_ctim.tv_sec == checked_ctime_.tv_sec && st.st_ctim.tv_nsec == checked_ctime_.tv_nsec) {
    *out = Check::kSame;
    return Status{};
  }
  struct stat at_path;
  if (lstat_path(path_.c_str(), &at_path) != 0) {
    if (errno != ENOENT) return Status::fail("stat");
    *out = Check::kReplaced;
    return Status{};
  }
  if (at_path.st_dev != st.st_dev || at_path.st_ino != st.st_ino) {
    *out = Check::kReplaced;
    return Status{};
  }
  // ctime has coarse (tick) resolution: a change within the same tick as the
  // current ctime could leave it unchanged. Cache only a ctime old enough
  // that any later change must produce a different value.
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t age_ns = (int64_t{now.tv_sec} - st.st_ctim.tv_sec) * 1000000000 + (now.tv_nsec - st.st_ctim.tv_nsec);
  checked_ = age_ns > kCtimeSettleNs;
  checked_ctime_ = st.st_ctim;
  *out = Check::kSame;
  return Status{};
}

Status LockFile::take(int op, uint64_t me, Taken* out) {
  Check check = Check::kSame;
  Status s = verify(&check);
  if (s.ok() && check == Check::kSame) {
    if (!marks_.admit(me)) {
      // A starving waiter's turn: hand the lock back untouched (no token
      // taken, owner-death news left for that waiter).
      ::flock(fd_, LOCK_UN);
      *out = Taken::kTurn;
      return s;
    }
    bool shared = (op & LOCK_SH) != 0;
    marks_.granted(shared, &grant_);
    holding_ = shared ? Holding::kShared : Holding::kExclusive;
    *out = Taken::kHeld;
    return s;
  }
  // The file was unlinked or replaced while we waited: our lock guards an
  // inode nobody else will open. Drop it and lock the file now at path.
  ::flock(fd_, LOCK_UN);
  marks_.leave(me);
  close();
  *out = Taken::kReplaced;
  return s;
}

Status LockFile::try_lock(bool shared, bool* busy) {
  *busy = false;
  int op = (shared ? LOCK_SH : LOCK_EX) | LOCK_NB;
  for (;;) {
    if (fd_ < 0) {
      Status s = open();
      if (!s.ok()) return s;
    }
    // The probe for a stale turn must not touch a lock this fd holds.
    if (marks_.turn_bars(holding_ == Holding::kNone ? fd_ : -1)) {
      *busy = true;  // no barging past a starving waiter
      return Status{};
    }
    Status s = flock_until(fd_, op, nullptr, kNoDeadline);
    if (s.error == -EWOULDBLOCK) {
      *busy = true;
      return Status{};
    }
    if (!s.ok()) return s;
    Taken taken;
    s = take(op, 0, &taken);
    if (taken == Taken::kTurn) *busy = true;
    if (!s.ok() || taken != Taken::kReplaced) return s;
  }
}

// Turns (file_turns.cc): a waiter starving for kStarvingNs takes a turn and
// blocks in flock, which it is sure to win once the lock is released: the
// others step aside (a waiter granted the lock gives it back, then parks in
// the marks until that turn is served).
template <typename Block>
Status LockFile::wait(bool shared, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t since_ns,
                      Block&& block) {
  int op = shared ? LOCK_SH : LOCK_EX;
  if (since_ns == 0) since_ns = monotonic_ns();
  uint64_t me = turn_id(since_ns, static_cast<int32_t>(syscall(SYS_gettid)));
  struct Leave {
    LockFile* file;
    uint64_t me;
    ~Leave() { file->marks_.leave(me); }  // every way out: granted, timed out, cancelled, failed
  } leave{this, me};
  uint64_t yielded = 0;  // the turn we last gave a grant back to
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) return Status{-ECANCELED, "flock"};
    int64_t now = monotonic_ns();
    if (deadline_ns != kNoDeadline && now >= deadline_ns) return Status{-ETIMEDOUT, "flock"};
    if (fd_ < 0) {
      Status s = open();
      if (!s.ok()) return s;
    }
    int64_t until = now + kDeferSliceNs;
    if (deadline_ns != kNoDeadline && until > deadline_ns) until = deadline_ns;
    int64_t wake = kNoDeadline;
    if (marks_.step(me, since_ns + kStarvingNs, yielded, until, fd_, &wake) == FileMarks::Next::kAgain) continue;
    Status s = block(fd_, op, wake);
    if (s.error == -ETIMEDOUT) continue;  // a wake or the deadline: the checks above decide
    if (!s.ok()) return s;
    Taken taken;
    s = take(op, me, &taken);
    if (!s.ok() || taken == Taken::kHeld) return s;
    if (taken == Taken::kTurn) yielded = marks_.pending_turn();
  }
}

Status LockFile::lock(bool shared, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t since_ns) {
  return wait(shared, cancel, deadline_ns, since_ns,
              [&](int fd, int op, int64_t wake) { return flock_waking(fd, op, cancel, deadline_ns, wake); });
}

Status LockFile::lock_timed(bool shared, int64_t deadline_ns, int64_t since_ns) {
  return wait(shared, nullptr, deadline_ns, since_ns, [&](int fd, int op, int64_t wake) {
    bool sooner = wake != kNoDeadline && (deadline_ns == kNoDeadline || wake < deadline_ns);
    return flock_timed(fd, op, sooner ? wake : deadline_ns);
  });
}

Status LockFile::unlock(bool clean) {
  if (fd_ < 0) return Status{};
  if (holding_ != Holding::kNone) marks_.released(holding_ == Holding::kShared, !clean && grant_.owner_died);
  holding_ = Holding::kNone;
  return flock_until(fd_, LOCK_UN, nullptr, -1);
}

void LockFile::close() {
  bool unlinked = false;
  if (fd_ >= 0) {
    struct stat st;
    unlinked = fstat(fd_, &st) == 0 && st.st_nlink == 0;
    ::close(fd_);  // closing the last fd of the description drops its lock
  }
  marks_.close(unlinked);
  fd_ = -1;
  holding_ = Holding::kNone;
  checked_ = false;
}

}  // namespace interlock
