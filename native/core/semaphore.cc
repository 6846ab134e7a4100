#include "semaphore.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "clock.h"
#include "interrupter.h"

namespace interlock {
namespace {

// A failed semop on the set we opened. EINVAL there means the set no longer
// exists (our ops and timeouts are always valid): unlink() or ipcrm removed
// it before this call, which the kernel reports as EIDRM only to a caller
// already waiting. Both are the one outcome, "removed", whatever the timing.
Status semop_failed() {
  int err = errno;
  return Status{err == EINVAL ? -EIDRM : -err, "semop"};
}

constexpr uint64_t kSemMagic = 0x4d45534c52544e49ULL;  // "INTRLSEM"
constexpr size_t kHeaderBytes = 64;                    // SemaphoreHeader, padded to a cache line
constexpr unsigned short kCount = 0;                   // the set: permits available ...
constexpr unsigned short kGate = 1;                    // ... and 0 while no heavy request waits
constexpr int64_t kPollSliceNs = 2 * 1000 * 1000;      // where a signal cannot interrupt (qemu-user)
constexpr int kClaimPasses = 1000;

enum RecordState : uint32_t { kFree = 0, kHeld = 1, kAbandoned = 2 };

// glibc and musl name the key field of struct ipc_perm differently.
#if defined(__GLIBC__)
key_t key_of(const semid_ds& ds) { return ds.sem_perm.__key; }
#else
key_t key_of(const semid_ds& ds) { return ds.sem_perm.__ipc_perm_key; }
#endif

union SemArg {
  int val;
  semid_ds* buf;
  unsigned short* array;
};

static_assert(sizeof(SemaphoreHeader) <= kHeaderBytes, "the header's room in the region");

uint64_t data_size_for(uint32_t permits) { return kHeaderBytes + uint64_t{permits} * sizeof(HolderRecord); }

int32_t random_key() {
  uint32_t k = 0;
  while (getrandom(&k, sizeof(k), 0) != sizeof(k)) {
  }
  return static_cast<int32_t>((k & 0x7fffffff) | 1);  // never IPC_PRIVATE (0)
}

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

Status init_record(HolderRecord* r) {
  r->state.store(kFree, std::memory_order_relaxed);
  return init_robust_mutex(&r->mutex);
}

// Whether the record's holder is gone (died with it locked, or abandoned by
// teardown), given that we just took its mutex with result `rc`.
bool took_dead(HolderRecord* r, int rc) {
  if (rc == EOWNERDEAD) pthread_mutex_consistent(&r->mutex);
  return r->state.load(std::memory_order_acquire) != kFree;
}

}  // namespace

HolderRecord* Semaphore::record(uint32_t i) const {
  return reinterpret_cast<HolderRecord*>(region_.data() + kHeaderBytes) + i;
}

Status Semaphore::open(const std::string& name, uint32_t permits, int mode) {
  if (permits < 1 || permits > kMaxPermits) return Status{-EINVAL, "semget"};
  permits_ = permits;
  Status st = region_.open(name, data_size_for(permits), mode, false, RegionKind::kSemaphore);
  if (st.ok()) st = set_up(mode);
  if (!st.ok()) region_.unmap();
  return st;
}

// Under the region's own mutex, so exactly one opener makes the set; a
// maker that died half-way leaves `ready` 0 and the next opener redoes it,
// first removing a set the dead one may have made under the recorded key.
Status Semaphore::set_up(int mode) {
  Grant ignored;
  Status st = region_.lock(&ignored, nullptr, kNoDeadline);
  if (!st.ok()) return st;
  SemaphoreHeader* h = header();
  if (h->ready.load(std::memory_order_acquire) == 0) {
    if (h->magic != 0 && h->magic != kSemMagic) {
      st = Status{ErrorKind::kIncompatible, "open"};
    } else {
      h->magic = kSemMagic;
      h->permits = permits_;
      int32_t stale = h->key.load(std::memory_order_relaxed);
      int old = stale != 0 ? semget(stale, 0, 0) : -1;
      if (old >= 0) semctl(old, 0, IPC_RMID);
      for (uint32_t i = 0; i < permits_ && st.ok(); ++i) st = init_record(record(i));
      int id = -1;
      while (st.ok() && id < 0) {
        int32_t key = random_key();
        h->key.store(key, std::memory_order_release);
        id = semget(key, 2, IPC_CREAT | IPC_EXCL | (mode & 0666));
        if (id < 0 && errno != EEXIST) st = Status::fail("semget");
      }
      unsigned short initial[2] = {static_cast<unsigned short>(permits_), 0};
      SemArg arg;
      arg.array = initial;
      if (st.ok() && semctl(id, 0, SETALL, arg) != 0) st = Status::fail("semctl");
      if (st.ok()) {
        h->semid.store(id, std::memory_order_relaxed);
        h->ready.store(1, std::memory_order_release);
      }
    }
  }
  if (st.ok()) st = check_set();
  region_.unlock(true);
  return st;
}

// The region must name a live set made for it: same key, two semaphores.
// Shared into another IPC namespace, or after `ipcrm`, it names none.
Status Semaphore::check_set() {
  SemaphoreHeader* h = header();
  if (h->magic != kSemMagic || h->permits != permits_) return Status{ErrorKind::kIncompatible, "open"};
  int id = h->semid.load(std::memory_order_relaxed);
  semid_ds ds;
  SemArg arg;
  arg.buf = &ds;
  if (semctl(id, 0, IPC_STAT, arg) != 0) {
    if (errno == EACCES) return Status::fail("semctl");
    return Status{ErrorKind::kIncompatible, "open"};
  }
  if (key_of(ds) != h->key.load(std::memory_order_relaxed) || ds.sem_nsems != 2)
    return Status{ErrorKind::kIncompatible, "open"};
  semid_ = id;
  return Status{};
}

// semtimedop until done, the deadline, or a cancel (whose signal makes it
// fail with EINTR: semop is never restarted after a handler).
Status Semaphore::semop_timed(void* ops, unsigned n, const std::atomic<bool>* cancel, int64_t deadline_ns) {
  // No timer tick can wake semtimedop here (qemu-user, or this thread has no
  // timer: RLIMIT_SIGPENDING used up): wait in short slices instead.
  bool poll = cancel != nullptr && !(Interrupter::works() && Interrupter::bound_here());
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) return Status{-ECANCELED, "semop"};
    int64_t now = monotonic_ns();
    int64_t left = deadline_ns == kNoDeadline ? -1 : deadline_ns - now;
    if (deadline_ns != kNoDeadline && left < 0) left = 0;
    if (poll && (left < 0 || left > kPollSliceNs)) left = kPollSliceNs;
    timespec ts{left / 1000000000, left % 1000000000};
    if (semtimedop(semid_, static_cast<sembuf*>(ops), n, left < 0 ? nullptr : &ts) == 0) return Status{};
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return semop_failed();
    if (deadline_ns != kNoDeadline && monotonic_ns() >= deadline_ns) return Status{-ETIMEDOUT, "semop"};
  }
}

Status Semaphore::try_lock(uint32_t weight, Permit* out, bool* busy) {
  *busy = false;
  sembuf ops[2] = {{kGate, 0, IPC_NOWAIT},
                   {kCount, static_cast<short>(-static_cast<int>(weight)), IPC_NOWAIT | SEM_UNDO}};
  int rc;
  do {
    rc = semop(semid_, ops, 2);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EAGAIN) {
      *busy = true;
      return Status{};
    }
    return semop_failed();
  }
  Status st = claim(weight, out);
  if (!st.ok()) give(weight);
  return st;
}

Status Semaphore::take(uint32_t weight, const std::atomic<bool>* cancel, int64_t deadline_ns) {
  Status st = take_queued(weight, cancel, deadline_ns);
  if (st.ok()) header()->handoffs.fetch_add(1, std::memory_order_relaxed);
  return st;
}

Status Semaphore::take_queued(uint32_t weight, const std::atomic<bool>* cancel, int64_t deadline_ns) {
  short minus = static_cast<short>(-static_cast<int>(weight));
  sembuf ops[2] = {{kGate, 0, 0}, {kCount, minus, SEM_UNDO}};
  if (weight == 1) return semop_timed(ops, 2, cancel, deadline_ns);
  ops[0].sem_flg = IPC_NOWAIT;
  ops[1].sem_flg = IPC_NOWAIT | SEM_UNDO;
  if (semop(semid_, ops, 2) == 0) return Status{};
  // Heavy and not free now: shut the gate (waiting for it to be open, so one
  // heavy request at a time), wait for the permits alone, open the gate.
  sembuf shut[2] = {{kGate, 0, 0}, {kGate, 1, SEM_UNDO}};
  Status st = semop_timed(shut, 2, cancel, deadline_ns);
  if (!st.ok()) return st;
  sembuf mine[1] = {{kCount, minus, SEM_UNDO}};
  st = semop_timed(mine, 1, cancel, deadline_ns);
  sembuf open_gate[1] = {{kGate, -1, SEM_UNDO}};
  while (semop(semid_, open_gate, 1) != 0 && errno == EINTR) {
  }
  return st;
}

// Every record that is not free is checked with trylock: a live holder's
// is busy; one we can take belongs to a holder that died (EOWNERDEAD) or was
// torn down (abandoned), and is reported once, to us. O(records in use).
Status Semaphore::claim(uint32_t weight, Permit* out) {
  if (region_.lost()) return Status{ErrorKind::kDamaged, "semop"};
  bool died = false;
  int chosen = -1;
  for (int pass = 0; pass < kClaimPasses && chosen < 0; ++pass) {
    if (pass > 0) sched_yield();  // every record briefly held by another claimer
    for (uint32_t i = 0; i < permits_; ++i) {
      HolderRecord* r = record(i);
      bool free = r->state.load(std::memory_order_acquire) == kFree;
      if (free && chosen >= 0) continue;
      int rc = pthread_mutex_trylock(&r->mutex);
      if (rc != 0 && rc != EOWNERDEAD) continue;  // a live holder, or another claimer
      if (took_dead(r, rc)) died = true;
      if (chosen < 0) {
        chosen = static_cast<int>(i);
      } else {
        r->state.store(kFree, std::memory_order_release);
        pthread_mutex_unlock(&r->mutex);
      }
    }
  }
  if (chosen < 0) return Status{-EAGAIN, "pthread_mutex_trylock"};
  HolderRecord* r = record(static_cast<uint32_t>(chosen));
  r->weight.store(weight, std::memory_order_relaxed);
  r->pid.store(static_cast<int32_t>(getpid()), std::memory_order_relaxed);
  r->tid.store(static_cast<int32_t>(syscall(SYS_gettid)), std::memory_order_relaxed);
  r->since_ms.store(now_ms(), std::memory_order_relaxed);
  r->state.store(kHeld, std::memory_order_release);
  out->grant.owner_died = died;
  out->grant.token = header()->token.fetch_add(1, std::memory_order_acq_rel) + 1;
  out->record = chosen;
  out->weight = weight;
  return Status{};
}

// After unlink() removed the set there is nothing to give back to.
Status Semaphore::give(uint32_t weight) {
  sembuf op[1] = {{kCount, static_cast<short>(weight), SEM_UNDO}};
  while (semop(semid_, op, 1) != 0) {
    if (errno == EINTR) continue;
    if (errno == EIDRM || errno == EINVAL) return Status{};
    return semop_failed();
  }
  return Status{};
}

Status Semaphore::adopt(const Request& r, Permit* out) {
  Status st = claim(r.weight, out);
  if (!st.ok()) give(r.weight);
  return st;
}

Status Semaphore::lock_timed(const Request& r, Permit* out, int64_t deadline_ns) {
  Status st = take(r.weight, nullptr, deadline_ns);
  return st.ok() ? adopt(r, out) : st;
}

Status Semaphore::unlock(const Permit& permit, bool clean) {
  if (!region_.lost() && permit.record >= 0 && static_cast<uint32_t>(permit.record) < permits_) {
    HolderRecord* r = record(static_cast<uint32_t>(permit.record));
    r->state.store(clean ? kFree : kAbandoned, std::memory_order_release);
    pthread_mutex_unlock(&r->mutex);
  }
  return give(permit.weight);
}

// Holders as the records say; a record whose holder died is marked
// abandoned on the way (so the next holder still hears of it) and left out.
Status Semaphore::info(SemaphoreInfo* out) {
  if (region_.lost()) return Status{ErrorKind::kDamaged, "semctl"};
  out->permits = permits_;
  int value = semctl(semid_, kCount, GETVAL);
  if (value < 0) return Status::fail("semctl");
  out->available = static_cast<uint32_t>(value);
  int count_waiters = semctl(semid_, kCount, GETNCNT);
  int gate_waiters = semctl(semid_, kGate, GETZCNT);
  out->waiting = static_cast<uint32_t>(std::max(count_waiters, 0) + std::max(gate_waiters, 0));
  out->handoffs = header()->handoffs.load(std::memory_order_relaxed);
  out->holders.clear();
  for (uint32_t i = 0; i < permits_; ++i) {
    HolderRecord* r = record(i);
    if (r->state.load(std::memory_order_acquire) != kHeld) continue;
    int rc = pthread_mutex_trylock(&r->mutex);
    if (rc == 0 || rc == EOWNERDEAD) {
      if (rc == EOWNERDEAD) pthread_mutex_consistent(&r->mutex);
      if (r->state.load(std::memory_order_acquire) == kHeld) r->state.store(kAbandoned, std::memory_order_release);
      pthread_mutex_unlock(&r->mutex);
      continue;
    }
    out->holders.push_back({r->pid.load(std::memory_order_relaxed), r->tid.load(std::memory_order_relaxed),
                            r->weight.load(std::memory_order_relaxed), r->since_ms.load(std::memory_order_relaxed)});
  }
  return Status{};
}

Status Semaphore::unlink(const std::string& name) {
  std::string path = "/dev/shm/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd >= 0) {
    RegionHeader rh;
    SemaphoreHeader sh;
    bool ours = pread(fd, &rh, sizeof(rh), 0) == static_cast<ssize_t>(sizeof(rh)) && rh.data_offset <= 4096 &&
                pread(fd, &sh, sizeof(sh), static_cast<off_t>(rh.data_offset)) == static_cast<ssize_t>(sizeof(sh)) &&
                sh.magic == kSemMagic && sh.ready.load() == 1;
    ::close(fd);
    semid_ds ds;
    SemArg arg;
    arg.buf = &ds;
    int id = ours ? sh.semid.load() : -1;
    if (id >= 0 && semctl(id, 0, IPC_STAT, arg) == 0 && key_of(ds) == sh.key.load() && semctl(id, 0, IPC_RMID) != 0) {
      return Status::fail("semctl");
    }
  }
  if (::unlink(path.c_str()) != 0) return Status::fail("unlink");
  return Status{};
}

}  // namespace interlock
