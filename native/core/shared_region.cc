#include "shared_region.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "clock.h"
#include "fault_guard.h"
#include "flock.h"

// glibc >= 2.30 has pthread_mutex_clocklock; a weak reference lets one binary
// use it where present and fall back to timedlock (CLOCK_REALTIME) on older
// glibc, where a wall-clock jump can stretch one slice (never the deadline:
// the loop below re-checks CLOCK_MONOTONIC).
extern "C" int pthread_mutex_clocklock(pthread_mutex_t*, clockid_t, const struct timespec*) __attribute__((weak));

namespace interlock {
namespace {

constexpr uint64_t kMagic = 0x4b434f4c52544e49ULL;  // "INTRLOCK"
constexpr uint32_t kLayout = 1;
constexpr int64_t kSliceNs = 2 * 1000 * 1000;  // cancel latency bound
constexpr size_t kDataAlign = 64;
constexpr double kOpenWaitMs = 10000;  // a creator initialises in microseconds
constexpr int kNotReady = -100002;     // internal: see open_fd
constexpr int kNotReadyTries = 40;

size_t header_bytes() { return (sizeof(RegionHeader) + kDataAlign - 1) / kDataAlign * kDataAlign; }

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

timespec to_timespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

int lock_until(pthread_mutex_t* m, int64_t mono_deadline_ns) {
  if (pthread_mutex_clocklock != nullptr) {
    timespec ts = to_timespec(mono_deadline_ns);
    return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
  }
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t real_ns = int64_t{now.tv_sec} * 1000000000 + now.tv_nsec + (mono_deadline_ns - monotonic_ns());
  timespec ts = to_timespec(real_ns);
  return pthread_mutex_timedlock(m, &ts);
}

// getpid/gettid are real syscalls (~200 ns here); the holder fields are
// written on every acquisition, so both are cached per thread. A forked
// child starts with the parent's cache, hence the atfork reset.
thread_local int32_t cached_tid = 0;
int32_t cached_pid = 0;

void reset_ids() {
  cached_tid = 0;
  cached_pid = 0;
}

int32_t self_pid() {
  static bool hooked = (pthread_atfork(nullptr, nullptr, reset_ids), true);
  (void)hooked;
  if (cached_pid == 0) cached_pid = static_cast<int32_t>(getpid());
  return cached_pid;
}

int32_t self_tid() {
  if (cached_tid == 0) cached_tid = static_cast<int32_t>(syscall(SYS_gettid));
  return cached_tid;
}

}  // namespace

std::string SharedRegion::abi_tag() {
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

Status init_robust_mutex(pthread_mutex_t* mutex) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  int rc = pthread_mutex_init(mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc == 0 ? Status{} : Status{-rc, "pthread_mutex_init"};
}

uint64_t SharedRegion::region_size(uint64_t data_size) { return header_bytes() + data_size; }

Status SharedRegion::initialise(int fd, uint64_t data_size) {
  // Zero everything first (ftruncate to 0 and back), so a half-written
  // earlier attempt leaves nothing behind.
  if (ftruncate(fd, 0) != 0) return Status::fail("ftruncate");
  if (ftruncate(fd, static_cast<off_t>(region_size(data_size))) != 0) return Status::fail("ftruncate");
  header_->magic = kMagic;
  header_->layout_version = kLayout;
  header_->header_size = static_cast<uint32_t>(header_bytes());
  std::string abi = abi_tag();
  std::strncpy(header_->abi, abi.c_str(), sizeof(header_->abi) - 1);
  header_->data_size = data_size;
  Status st = init_robust_mutex(&header_->mutex);
  if (!st.ok()) return st;
  header_->canary = kMagic;
  header_->ready.store(1, std::memory_order_release);
  return Status{};
}

// Everyone who has the region mapped holds a shared flock on its fd for as
// long as the mapping lives. An opener that gets the exclusive flock without
// waiting is therefore alone with the file: only then may it (re)initialise a
// half-made region (a creator crashed before setting `ready`). An opener that
// is not alone waits for its shared flock (a creator holds the exclusive one
// only while it initialises) and then only validates: a region zeroed or
// truncated under its users is refused, never rebuilt beneath a holder.
Status SharedRegion::open(const std::string& name, uint64_t data_size, int mode) {
  unmap();
  std::string path = "/dev/shm/" + name;
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::fail("open");
  Status st = open_fd(fd, data_size);
  if (!st.ok()) {
    unmap();
    ::close(fd);
    return st;
  }
  fd_ = fd;
  guard_ = guard_mapping(header_, length_);
  return st;
}

Status SharedRegion::open_fd(int fd, uint64_t data_size) {
  // Not alone and not ready: either a creator died mid-initialisation and
  // other openers are passing through (then one of us soon gets the
  // exclusive flock and redoes it), or the file was damaged under its users
  // (then it stays shared, and we refuse it after a few tries).
  for (int attempt = 0;; ++attempt) {
    bool alone = false;
    Status st = map_checked(fd, data_size, &alone);
    if (st.error != kNotReady) return st;
    unmap();
    if (attempt >= kNotReadyTries) return Status{kIncompatible, "open"};
    flock_until(fd, LOCK_UN, nullptr, kNoDeadline);
    usleep(1000 + 1000 * (attempt % 4));
  }
}

Status SharedRegion::map_checked(int fd, uint64_t data_size, bool* alone) {
  Status st = flock_until(fd, LOCK_EX | LOCK_NB, nullptr, kNoDeadline);
  *alone = st.ok();
  if (st.error == -EWOULDBLOCK) {
    st = flock_timed(fd, LOCK_SH, deadline_after_ms(kOpenWaitMs));
    if (!st.ok()) return st;
  } else if (!st.ok()) {
    return st;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) return Status::fail("fstat");
  if (!S_ISREG(sb.st_mode)) return Status{kIncompatible, "open"};
  uint64_t want = region_size(data_size);
  uint64_t have = static_cast<uint64_t>(sb.st_size);
  bool fresh = have == 0;
  if (!fresh && have != want) {
    // Tell a half-made region (all zero) from a real mismatch.
    RegionHeader probe;
    ssize_t n = pread(fd, &probe, sizeof(probe), 0);
    fresh = n == static_cast<ssize_t>(sizeof(probe)) && all_zero(&probe, sizeof(probe));
    if (!fresh) return Status{kIncompatible, "open"};
  }
  if (fresh && !*alone) return Status{kNotReady, "open"};
  if (fresh && ftruncate(fd, static_cast<off_t>(want)) != 0) return Status::fail("ftruncate");
  void* addr = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return Status::fail("mmap");
  header_ = static_cast<RegionHeader*>(addr);
  length_ = want;
  data_size_ = data_size;
  data_ = static_cast<uint8_t*>(addr) + header_bytes();

  bool half_made = header_->ready.load(std::memory_order_acquire) == 0 &&
                   (header_->magic == kMagic || all_zero(header_, sizeof(RegionHeader)));
  if (half_made && !*alone) return Status{kNotReady, "open"};
  if (fresh || half_made) {
    st = initialise(fd, data_size);
  } else if (header_->magic != kMagic || header_->layout_version != kLayout || header_->header_size != header_bytes() ||
             header_->data_size != data_size ||
             std::strncmp(header_->abi, abi_tag().c_str(), sizeof(header_->abi)) != 0 ||
             header_->ready.load(std::memory_order_acquire) != 1 || header_->canary != kMagic) {
    st = Status{kIncompatible, "open"};
  }
  if (st.ok() && *alone) st = flock_until(fd, LOCK_SH, nullptr, kNoDeadline);  // stay, as a user
  return st;
}

Status SharedRegion::peek(const std::string& name, Snapshot* out) {
  std::string path = "/dev/shm/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return Status::fail("open");
  alignas(RegionHeader) unsigned char raw[sizeof(RegionHeader)];
  ssize_t n = pread(fd, raw, sizeof(raw), 0);
  int err = errno;
  ::close(fd);
  if (n < 0) return Status::fail("read", err);
  const auto* h = reinterpret_cast<const RegionHeader*>(raw);
  if (n != static_cast<ssize_t>(sizeof(raw)) || h->magic != kMagic || h->layout_version != kLayout) {
    return Status{kIncompatible, "open"};
  }
  out->data_size = h->data_size;
  out->token = h->token.load(std::memory_order_relaxed);
  out->ready = h->ready.load(std::memory_order_relaxed) != 0;
  out->dirty = h->dirty.load(std::memory_order_relaxed) != 0;
  out->holder_pid = h->holder_pid.load(std::memory_order_relaxed);
  out->holder_tid = h->holder_tid.load(std::memory_order_relaxed);
  out->acquired_at_ms = h->acquired_at_ms.load(std::memory_order_relaxed);
  std::memcpy(out->abi, h->abi, sizeof(out->abi));
  out->abi[sizeof(out->abi) - 1] = 0;
  return Status{};
}

void SharedRegion::unmap() {
  unguard_mapping(guard_);
  guard_ = -1;
  if (header_ != nullptr) munmap(header_, length_);
  if (fd_ >= 0) ::close(fd_);  // drops our shared flock: no longer a user
  fd_ = -1;
  header_ = nullptr;
  data_ = nullptr;
  length_ = 0;
}

bool SharedRegion::intact() const { return *static_cast<volatile const uint64_t*>(&header_->canary) == kMagic; }

void SharedRegion::on_acquired(int rc, Grant* grant) {
  bool died = rc == EOWNERDEAD;
  // The previous holder died mid-update: its state may be half-written, but
  // the mutex itself is fine. Mark it consistent and tell the new holder.
  if (died) pthread_mutex_consistent(&header_->mutex);
  if (header_->dirty.exchange(1, std::memory_order_acq_rel) != 0) died = true;
  grant->owner_died = died;
  grant->token = header_->token.fetch_add(1, std::memory_order_acq_rel) + 1;
  header_->holder_pid.store(self_pid(), std::memory_order_relaxed);
  header_->holder_tid.store(self_tid(), std::memory_order_relaxed);
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);  // vDSO, no syscall
  header_->acquired_at_ms.store(int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1000000, std::memory_order_relaxed);
}

Status SharedRegion::try_lock(Grant* grant, bool* busy) {
  *busy = false;
  if (lost()) return Status{kDamaged, "pthread_mutex_trylock"};
  int rc = pthread_mutex_trylock(&header_->mutex);
  if (lost()) {  // it faulted onto a private zero page, or the mutex was zeroed
    if (rc == 0 || rc == EOWNERDEAD) pthread_mutex_unlock(&header_->mutex);
    return Status{kDamaged, "pthread_mutex_trylock"};
  }
  if (rc == EBUSY) {
    *busy = true;
    return Status{};
  }
  if (rc != 0 && rc != EOWNERDEAD) return Status{-rc, "pthread_mutex_trylock"};
  on_acquired(rc, grant);
  return Status{};
}

Status SharedRegion::lock(Grant* grant, const std::atomic<bool>* cancel, int64_t deadline_ns) {
  // Uncontended: no clock reads, no timed call (a timed lock never times
  // out when it can lock at once, so this is also right for past deadlines).
  if (lost()) return Status{kDamaged, "pthread_mutex_lock"};
  int first = pthread_mutex_trylock(&header_->mutex);
  if (lost()) {
    if (first == 0 || first == EOWNERDEAD) pthread_mutex_unlock(&header_->mutex);
    return Status{kDamaged, "pthread_mutex_lock"};
  }
  if (first == 0 || first == EOWNERDEAD) {
    on_acquired(first, grant);
    return Status{};
  }
  if (first != EBUSY) return Status{-first, "pthread_mutex_lock"};
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) return Status{-ECANCELED, "pthread_mutex_lock"};
    int64_t now = monotonic_ns();
    if (deadline_ns != kNoDeadline && now >= deadline_ns) return Status{-ETIMEDOUT, "pthread_mutex_lock"};
    int64_t until = now + kSliceNs;
    if (cancel == nullptr) until = deadline_ns == kNoDeadline ? now + 1000 * kSliceNs : deadline_ns;
    if (deadline_ns != kNoDeadline && until > deadline_ns) until = deadline_ns;
    int rc = lock_until(&header_->mutex, until);
    if (lost()) {
      if (rc == 0 || rc == EOWNERDEAD) pthread_mutex_unlock(&header_->mutex);
      return Status{kDamaged, "pthread_mutex_lock"};
    }
    if (rc == ETIMEDOUT || rc == EINTR) continue;
    if (rc != 0 && rc != EOWNERDEAD) return Status{-rc, "pthread_mutex_lock"};
    on_acquired(rc, grant);
    return Status{};
  }
}

Status SharedRegion::unlock(bool clean) {
  if (lost()) return Status{};  // the mutex went with the file; nothing to release
  if (clean) {
    header_->holder_pid.store(0, std::memory_order_relaxed);
    header_->holder_tid.store(0, std::memory_order_relaxed);
    header_->dirty.store(0, std::memory_order_release);
  }
  int rc = pthread_mutex_unlock(&header_->mutex);
  if (rc != 0) return Status{-rc, "pthread_mutex_unlock"};
  return Status{};
}

}  // namespace interlock
