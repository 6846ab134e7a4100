#include "region_file.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clock.h"
#include "fault_guard.h"
#include "flock.h"

namespace interlock {
namespace {

constexpr uint32_t kLayout = 2;  // 2: kind, PID namespace, broken flag, state/data offsets
constexpr uint64_t kAlign = 64;
constexpr double kOpenWaitMs = 10000;  // a creator initialises in microseconds
constexpr int kNotReadyTries = 40;

uint64_t align(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

// What a header read from the file says about using it with `spec`.
Status check(const RegionHeader& h, const RegionSpec& spec) {
  if (h.magic != kRegionMagic || h.layout_version != kLayout || h.canary != kRegionMagic ||
      std::strncmp(h.abi, RegionFile::abi_tag().c_str(), sizeof(h.abi)) != 0) {
    return Status{ErrorKind::kIncompatible, "open"};
  }
  if (h.kind != static_cast<uint32_t>(spec.kind)) return Status{ErrorKind::kOtherKind, "open"};
  uint64_t dev = 0, ino = 0;
  RegionFile::pid_namespace(&dev, &ino);
  if (h.pid_ns_dev != dev || h.pid_ns_ino != ino) return Status{ErrorKind::kOtherPidNs, "open"};
  if (h.broken.load(std::memory_order_acquire) != 0) return Status{ErrorKind::kBroken, "open"};
  if (h.state_offset != align(sizeof(RegionHeader)) || h.state_size != spec.state_size ||
      h.data_offset != h.state_offset + align(spec.state_size) || h.data_size != spec.data_size) {
    return Status{ErrorKind::kIncompatible, "open"};
  }
  return Status{};
}

// posix_fallocate, not a sparse ftruncate: every page exists once this
// returns, so a full /dev/shm is ENOSPC here and never SIGBUS later.
int reserve(int fd, uint64_t size) {
  int rc;
  do {
    rc = posix_fallocate(fd, 0, static_cast<off_t>(size));
  } while (rc == EINTR);
  return rc;
}

}  // namespace

std::string RegionFile::abi_tag() {
#if defined(__GLIBC__)
  std::string tag = "glibc";
#else
  std::string tag = "musl";
#endif
#if defined(__x86_64__)
  tag += "/x86_64";
#elif defined(__aarch64__)
  tag += "/aarch64";
#else
  tag += "/other";
#endif
  tag += "/m" + std::to_string(sizeof(pthread_mutex_t)) + "/l" + std::to_string(sizeof(long));
  return tag;
}

uint64_t RegionFile::region_size(const RegionSpec& spec) {
  return align(sizeof(RegionHeader)) + align(spec.state_size) + spec.data_size;
}

// open+fstat rather than stat: stat is a glibc 2.33 symbol, above the
// prebuilds' floor (glibc_compat.h wraps fstat).
void RegionFile::pid_namespace(uint64_t* dev, uint64_t* ino) {
  *dev = 0;
  *ino = 0;
  int fd = ::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat sb;
  if (fstat(fd, &sb) == 0) {
    *dev = sb.st_dev;
    *ino = sb.st_ino;
  }
  ::close(fd);
}

// Everyone who has the region mapped holds a shared flock on its fd for as
// long as the mapping lives. An opener that gets the exclusive flock without
// waiting is therefore alone with the file: only then may it (re)initialise a
// half-made region (a creator crashed before setting `ready`). An opener that
// is not alone waits for its shared flock (a creator holds the exclusive one
// only while it initialises) and then only validates: a region zeroed or
// truncated under its users is refused, never rebuilt beneath a holder.
Status RegionFile::open(const std::string& name, const RegionSpec& spec, RegionInit init, void* arg) {
  unmap();
  std::string path = "/dev/shm/" + name;
  for (;;) {
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, spec.mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return Status::fail("open");
    Status st = open_fd(fd, path, spec, init, arg);
    if (!st.ok()) {
      unmap();
      ::close(fd);
      if (st.kind == ErrorKind::kStale) continue;  // a creator that hit ENOSPC removed it: start over
      return st;
    }
    fd_ = fd;
    return st;
  }
}

Status RegionFile::open_fd(int fd, const std::string& path, const RegionSpec& spec, RegionInit init, void* arg) {
  // Not alone and not ready: either a creator died mid-initialisation and
  // other openers are passing through (then one of us soon gets the
  // exclusive flock and redoes it), or the file was damaged under its users
  // (then it stays shared, and we refuse it after a few tries).
  for (int attempt = 0;; ++attempt) {
    Status st = map_checked(fd, path, spec, init, arg);
    if (st.kind != ErrorKind::kNotReady) return st;
    unmap();
    if (attempt >= kNotReadyTries) return Status{ErrorKind::kIncompatible, "open"};
    flock_until(fd, LOCK_UN, nullptr, kNoDeadline);
    usleep(1000 + 1000 * (attempt % 4));
  }
}

Status RegionFile::map_checked(int fd, const std::string& path, const RegionSpec& spec, RegionInit init, void* arg) {
  // Another user's file is refused before we wait for its flock: a squatter
  // holding it exclusively must not stall us for kOpenWaitMs.
  struct stat early;
  if (fstat(fd, &early) != 0) return Status::fail("fstat");
  if (!spec.allow_foreign_owner && early.st_uid != geteuid()) {
    file_uid_ = early.st_uid;
    file_mode_ = early.st_mode & 07777;
    return Status{ErrorKind::kForeignOwner, "open"};
  }
  Status st = flock_until(fd, LOCK_EX | LOCK_NB, nullptr, kNoDeadline);
  bool alone = st.ok();
  if (st.error == -EWOULDBLOCK) {
    st = flock_timed(fd, LOCK_SH, deadline_after_ms(kOpenWaitMs));
    if (!st.ok()) return st;
  } else if (!st.ok()) {
    return st;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) return Status::fail("fstat");
  if (!S_ISREG(sb.st_mode)) return Status{ErrorKind::kIncompatible, "open"};
  if (sb.st_nlink == 0) return Status{ErrorKind::kStale, "open"};
  // Squatting: a region made by someone else, or open to more users than
  // our mode allows, could be held for ever or scribbled on by them.
  file_uid_ = sb.st_uid;
  file_mode_ = sb.st_mode & 07777;
  if (!spec.allow_foreign_owner && sb.st_uid != geteuid()) return Status{ErrorKind::kForeignOwner, "open"};
  if ((sb.st_mode & 0022 & ~static_cast<mode_t>(spec.mode)) != 0) return Status{ErrorKind::kTooOpen, "open"};

  uint64_t want = region_size(spec);
  uint64_t have = static_cast<uint64_t>(sb.st_size);
  RegionHeader probe;
  std::memset(static_cast<void*>(&probe), 0, sizeof(probe));
  ssize_t n = have == 0 ? 0 : pread(fd, &probe, sizeof(probe), 0);
  if (n < 0) return Status::fail("read");
  // Blank: never initialised, or a creator died before setting `ready`.
  bool blank = all_zero(&probe, sizeof(probe)) || (probe.magic == kRegionMagic && probe.layout_version == kLayout &&
                                                   probe.ready.load(std::memory_order_acquire) == 0);
  if (blank && !alone) return Status{ErrorKind::kNotReady, "open"};
  if (blank) return create(fd, path, spec, init, arg);
  st = check(probe, spec);
  if (st.ok() && (have != want || probe.ready.load(std::memory_order_acquire) != 1))
    st = Status{ErrorKind::kIncompatible, "open"};
  if (st.ok()) st = map(fd, spec);
  if (st.ok() && alone) st = flock_until(fd, LOCK_SH, nullptr, kNoDeadline);  // stay, as a user
  return st;
}

// Alone with the file (exclusive flock): zero it, reserve every page, map,
// initialise, set `ready` last, and stay as a user.
Status RegionFile::create(int fd, const std::string& path, const RegionSpec& spec, RegionInit init, void* arg) {
  uint64_t want = region_size(spec);
  if (ftruncate(fd, 0) != 0) return Status::fail("ftruncate");
  int rc = reserve(fd, want);
  if (rc != 0) {
    // Leave no half-made name: a later opener would only hit the same wall.
    // Openers already waiting on this inode see it unlinked and start over.
    if (ftruncate(fd, 0) != 0) { /* unlinked next anyway */
    }
    unlink(path.c_str());
    return Status{-rc, "posix_fallocate"};
  }
  Status st = map(fd, spec);
  if (!st.ok()) return st;
  header_->magic = kRegionMagic;
  header_->layout_version = kLayout;
  header_->kind = static_cast<uint32_t>(spec.kind);
  std::string abi = abi_tag();
  std::strncpy(header_->abi, abi.c_str(), sizeof(header_->abi) - 1);
  header_->state_offset = align(sizeof(RegionHeader));
  header_->state_size = spec.state_size;
  header_->data_offset = header_->state_offset + align(spec.state_size);
  header_->data_size = spec.data_size;
  pid_namespace(&header_->pid_ns_dev, &header_->pid_ns_ino);
  header_->canary = kRegionMagic;
  if (init != nullptr) {
    st = init(state(), arg);
    if (!st.ok()) return st;
  }
  header_->ready.store(1, std::memory_order_release);
  return flock_until(fd, LOCK_SH, nullptr, kNoDeadline);
}

Status RegionFile::map(int fd, const RegionSpec& spec) {
  uint64_t want = region_size(spec);
  void* addr = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return Status::fail("mmap");
  header_ = static_cast<RegionHeader*>(addr);
  length_ = want;
  data_size_ = spec.data_size;
  state_ = static_cast<uint8_t*>(addr) + align(sizeof(RegionHeader));
  data_ = static_cast<uint8_t*>(addr) + align(sizeof(RegionHeader)) + align(spec.state_size);
  guard_ = guard_mapping(addr, want);
  if (guard_ < 0) return Status{ErrorKind::kGuardFull, "mmap"};
  lost_mark_ = lost_mark(guard_);
  return Status{};
}

Status RegionFile::peek(const std::string& name, RegionKind kind, RegionHeader* out, void* state, size_t state_size) {
  std::string path = "/dev/shm/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return Status::fail("open");
  ssize_t n = pread(fd, out, sizeof(*out), 0);
  int err = errno;
  ssize_t m = n == static_cast<ssize_t>(sizeof(*out)) && out->magic == kRegionMagic && out->layout_version == kLayout &&
                      out->state_size == state_size
                  ? pread(fd, state, state_size, static_cast<off_t>(out->state_offset))
                  : 0;
  ::close(fd);
  if (n < 0) return Status::fail("read", err);
  if (n != static_cast<ssize_t>(sizeof(*out)) || out->magic != kRegionMagic || out->layout_version != kLayout) {
    return Status{ErrorKind::kIncompatible, "open"};
  }
  if (out->kind != static_cast<uint32_t>(kind)) return Status{ErrorKind::kOtherKind, "open"};
  if (m != static_cast<ssize_t>(state_size)) return Status{ErrorKind::kIncompatible, "open"};
  out->abi[sizeof(out->abi) - 1] = 0;
  return Status{};
}

void RegionFile::unmap() {
  unguard_mapping(guard_);
  guard_ = -1;
  lost_mark_ = nullptr;
  if (header_ != nullptr) munmap(header_, length_);
  if (fd_ >= 0) ::close(fd_);  // drops our shared flock: no longer a user
  fd_ = -1;
  header_ = nullptr;
  state_ = nullptr;
  data_ = nullptr;
  length_ = 0;
}

bool RegionFile::header_intact() const {
  uintptr_t at = mapping_lost_at(guard_);
  bool pages = at == 0 || at >= reinterpret_cast<uintptr_t>(data_);
  return pages && *static_cast<volatile const uint64_t*>(&header_->canary) == kRegionMagic;
}

void RegionFile::mark_broken() {
  if (header_intact()) header_->broken.store(1, std::memory_order_release);
}

}  // namespace interlock
