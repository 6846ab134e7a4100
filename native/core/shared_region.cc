#include "shared_region.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "clock.h"
#include "turn.h"

namespace interlock {
namespace {

constexpr int64_t kSliceNs = 2 * 1000 * 1000;  // cancel latency bound

// Robust mutexes this thread holds through us (see kRobustListLimit).
thread_local int held = 0;

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

RegionSpec mutex_spec(uint64_t data_size, int mode, bool allow_foreign_owner, RegionKind kind) {
  return RegionSpec{kind, sizeof(MutexState), data_size, mode, allow_foreign_owner};
}

}  // namespace

// The Semaphore's holder records use it too.
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

namespace {

Status init_mutex(void* state, void*) { return init_robust_mutex(&static_cast<MutexState*>(state)->mutex); }

}  // namespace

uint64_t SharedRegion::region_size(uint64_t data_size) {
  return RegionFile::region_size(mutex_spec(data_size, 0, false, RegionKind::kMutex));
}

Status SharedRegion::open(const std::string& name, uint64_t data_size, int mode, bool allow_foreign_owner,
                          RegionKind kind) {
  return file_.open(name, mutex_spec(data_size, mode, allow_foreign_owner, kind), init_mutex, nullptr);
}

static void fill(SharedRegion::Snapshot* out, const RegionHeader& h, const MutexState& s) {
  uint64_t dev = 0, ino = 0;
  RegionFile::pid_namespace(&dev, &ino);
  out->data_size = h.data_size;
  out->token = s.token.load(std::memory_order_relaxed);
  out->ready = h.ready.load(std::memory_order_relaxed) != 0;
  out->dirty = s.dirty.load(std::memory_order_relaxed) != 0;
  out->broken = h.broken.load(std::memory_order_relaxed) != 0;
  out->same_pid_ns = h.pid_ns_dev == dev && h.pid_ns_ino == ino;
  out->holder_pid = s.holder_pid.load(std::memory_order_relaxed);
  out->holder_tid = s.holder_tid.load(std::memory_order_relaxed);
  out->acquired_at_ms = s.acquired_at_ms.load(std::memory_order_relaxed);
  out->handoff = s.turn.load(std::memory_order_relaxed) != 0;
  out->handoffs = s.handoffs.load(std::memory_order_relaxed);
  std::memcpy(out->abi, h.abi, sizeof(out->abi));
  out->abi[sizeof(out->abi) - 1] = 0;
}

Status SharedRegion::peek(const std::string& name, Snapshot* out) {
  RegionHeader h;
  alignas(MutexState) unsigned char raw[sizeof(MutexState)];
  Status st = RegionFile::peek(name, RegionKind::kMutex, &h, raw, sizeof(raw));
  if (!st.ok()) return st;
  fill(out, h, *reinterpret_cast<const MutexState*>(raw));
  return Status{};
}

SharedRegion::Snapshot SharedRegion::snapshot() const {
  Snapshot s{};
  fill(&s, *header(), *state());
  if (lost()) s.broken = true;  // as far as this mapping can tell
  return s;
}

// The mapping lost pages, or someone marked the region broken: refuse,
// marking it broken for everyone if the header can still say so, and never
// leave the real mutex locked by us (rc is what the lock call returned).
Status SharedRegion::refuse(int rc, const char* call) {
  bool damaged = lost();
  if (damaged) file_.mark_broken();
  if (rc == 0 || rc == EOWNERDEAD) {
    if (rc == EOWNERDEAD) pthread_mutex_consistent(&state()->mutex);
    pthread_mutex_unlock(&state()->mutex);
  }
  return Status{damaged ? ErrorKind::kDamaged : ErrorKind::kBroken, call};
}

// A slow-path wait: its turn id and when it began. Ends a turn it still
// has on every way out of lock() (granted, timed out, cancelled, failed).
class SharedRegion::Waiter {
 public:
  Waiter(SharedRegion* region, int64_t since_ns)
      : region_(region), since_ns_(since_ns), id_(turn_id(since_ns, self_tid())) {}
  ~Waiter() {
    if (!region_->lost() && region_->state()->turn.load(std::memory_order_relaxed) == id_) region_->end_turn(id_);
  }
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  uint64_t id() const { return id_; }
  int64_t starving_at() const { return since_ns_ + kStarvingNs; }

 private:
  SharedRegion* region_;
  int64_t since_ns_;
  uint64_t id_;
};

void SharedRegion::end_turn(uint64_t turn) { end_turn_in(state(), turn); }

// Its thread is gone (killed, exited, torn down without unwinding), or it
// has not taken the mutex in kTurnGraceMs of the mutex being free (stopped,
// or starved of CPU itself). Either way holding the others back helps nobody.
bool SharedRegion::turn_stale(uint64_t turn) {
  if (turn_thread_gone(turn)) return true;
  uint32_t since = state()->free_since_ms.load(std::memory_order_relaxed);
  return since != 0 && ms_since(since) > kTurnGraceMs;
}

// Parks until the turn changes or `until_ns`. The counter and the turn are
// both seq_cst on each side, so a turn that ends between our check and the
// futex wait either is seen here or bumps turn_seq first (EAGAIN).
void SharedRegion::defer(uint64_t turn, int64_t until_ns) {
  MutexState* s = state();
  s->deferring.fetch_add(1);
  uint32_t seq = s->turn_seq.load();
  if (s->turn.load() == turn) futex_wait(&s->turn_seq, seq, until_ns);
  s->deferring.fetch_sub(1);
}

Status SharedRegion::on_acquired(int rc, Grant* grant, const char* call, uint64_t me, bool* gave_back) {
  *gave_back = false;
  if (lost() || file_.broken()) return refuse(rc, call);
  MutexState* s = state();
  bool died = rc == EOWNERDEAD;
  // The previous holder died mid-update: its state may be half-written, but
  // the mutex itself is fine. Mark it consistent and tell the new holder.
  if (died) pthread_mutex_consistent(&s->mutex);
  uint64_t turn = s->turn.load();
  if (turn != 0 && turn != me) {
    // Another waiter's turn: hand the mutex back untouched (a dead holder's
    // `dirty` stays set, so the turn's waiter hears ownerDied).
    pthread_mutex_unlock(&s->mutex);
    *gave_back = true;
    return Status{};
  }
  s->free_since_ms.store(0, std::memory_order_relaxed);
  if (turn != 0) {
    s->served_ns.store(monotonic_ns(), std::memory_order_relaxed);
    end_turn(turn);
  }
  if (s->dirty.exchange(1, std::memory_order_acq_rel) != 0) died = true;
  grant->owner_died = died;
  grant->token = s->token.fetch_add(1, std::memory_order_acq_rel) + 1;
  s->holder_pid.store(self_pid(), std::memory_order_relaxed);
  s->holder_tid.store(self_tid(), std::memory_order_relaxed);
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);  // vDSO, no syscall
  s->acquired_at_ms.store(int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1000000, std::memory_order_relaxed);
  ++held;
  return Status{};
}

Status SharedRegion::try_lock(Grant* grant, bool* busy) {
  *busy = false;
  if (lost() || file_.broken()) return refuse(EBUSY, "pthread_mutex_trylock");
  if (held >= kRobustListLimit) return Status{-ENOLCK, "pthread_mutex_trylock"};
  // A starving waiter's turn is pending: no barging, unless the turn is
  // stale (its waiter was killed mid-wait, say). Only waiters used to look,
  // so a tryAcquire-only user was refused for ever after such a death.
  uint64_t turn = state()->turn.load(std::memory_order_acquire);
  if (turn != 0) {
    if (!turn_stale(turn)) {
      *busy = true;
      return Status{};
    }
    end_turn(turn);
  }
  int rc = pthread_mutex_trylock(&state()->mutex);
  if (rc == EBUSY && !lost()) {
    *busy = true;
    return Status{};
  }
  if (rc != 0 && rc != EOWNERDEAD && !lost()) return Status{-rc, "pthread_mutex_trylock"};
  Status st = on_acquired(rc, grant, "pthread_mutex_trylock", 0, busy);
  return st;
}

namespace {

// The lock word of glibc's robust mutex (nptl): its owner's TID, with
// FUTEX_WAITERS when someone may sleep on it and FUTEX_OWNER_DIED after its
// owner died. Shared, not private: the kernel's owner-death wake-up is.
std::atomic<uint32_t>* lock_word(pthread_mutex_t* m) {
  return reinterpret_cast<std::atomic<uint32_t>*>(&m->__data.__lock);
}

// pthread_mutex_clocklock without its one fatal error. glibc aborts the
// process when futex(2) answers EFAULT to a wait, and the kernel does when
// another process truncates the region between glibc touching the lock word
// and the call. So we never call glibc's blocking lock: pthread_mutex_trylock
// (it makes no futex call) and a futex wait of our own, parked on the lock
// word as glibc's waiters are, so glibc's unlock and the kernel's owner-death
// handling wake us as they would wake them (and regions stay shared with
// older interlock versions, whose waiters are glibc's).
//
// No lost wake-up: we sleep only on a word with FUTEX_WAITERS set, and
// futex(2) checks the word as it queues us (changed: EAGAIN, we retry). Only
// the owner clears the flag, by unlocking, and that wakes one sleeper; so
// does the kernel when the owner dies with the flag set. The one woken either
// takes the mutex or sets the flag on the new owner's word before it sleeps
// again or returns (it retries trylock even past `until`), so the next release
// wakes another. Its trylock stores a bare TID, which alone would leave the
// sleepers still queued unwoken by its own unlock: so a thread that takes the
// mutex after having waited sets the flag itself (glibc's
// assume_other_futex_waiters). The price, as with glibc, is one spare wake
// when it was the last waiter. *waited carries that over the slices of one wait.
//
// Returns what trylock does (0, EOWNERDEAD, ENOTRECOVERABLE, ...) or
// ETIMEDOUT; with region.lost() anything, the caller refuses then.
int lock_until(const SharedRegion& region, pthread_mutex_t* m, int64_t until_ns, bool* waited) {
  std::atomic<uint32_t>* word = lock_word(m);
  for (;;) {
    int rc = pthread_mutex_trylock(m);
    if (region.lost()) return rc;
    if (rc != EBUSY) {
      if ((rc == 0 || rc == EOWNERDEAD) && *waited) word->fetch_or(FUTEX_WAITERS);
      return rc;
    }
    // Freed or orphaned since: try again. (A cut page reads as zero now,
    // through the fault guard; any other busy word, even one scribbled
    // over, is slept on until `until`, as glibc would, never spun on.)
    uint32_t v = word->load();
    if (v == 0 || (v & FUTEX_OWNER_DIED) != 0) continue;
    if ((v & FUTEX_WAITERS) == 0 && !word->compare_exchange_strong(v, v | FUTEX_WAITERS)) continue;
    *waited = true;
    int err = futex_wait(word, v | FUTEX_WAITERS, until_ns);
    if (err == ETIMEDOUT) return ETIMEDOUT;
    if (err == EFAULT) {
      // The page is gone from the file: touching it lets the fault guard swap
      // in a zero page and record the loss, which the caller reports.
      (void)word->load();
      return EFAULT;
    }
    if (err != 0 && err != EAGAIN && err != EINTR) return err;
  }
}

}  // namespace

Status SharedRegion::lock(Grant* grant, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t since_ns) {
  // Uncontended: no clock reads, no timed call (a timed lock never times
  // out when it can lock at once, so this is also right for past deadlines).
  bool busy = false;
  Status st = try_lock(grant, &busy);
  if (!st.ok()) st.syscall = "pthread_mutex_lock";
  if (!st.ok() || !busy) return st;
  MutexState* s = state();
  pthread_mutex_t* m = &s->mutex;
  Waiter me(this, since_ns != 0 ? since_ns : monotonic_ns());
  bool waited = false;  // see lock_until
  for (;;) {
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) return Status{-ECANCELED, "pthread_mutex_lock"};
    int64_t now = monotonic_ns();
    if (deadline_ns != kNoDeadline && now >= deadline_ns) return Status{-ETIMEDOUT, "pthread_mutex_lock"};
    int64_t until = now + kSliceNs;
    if (cancel == nullptr) until = deadline_ns == kNoDeadline ? now + 1000 * kSliceNs : deadline_ns;
    if (deadline_ns != kNoDeadline && until > deadline_ns) until = deadline_ns;
    bool starving = now >= me.starving_at();
    uint64_t turn = s->turn.load();
    if (turn != 0 && turn != me.id()) {
      if (starving && turn_older(me.id(), turn)) {
        s->turn.compare_exchange_strong(turn, me.id());  // the longest waiter's turn
      } else if (turn_stale(turn)) {
        end_turn(turn);
      } else {
        defer(turn, std::min(until, now + kSliceNs));
      }
      continue;
    }
    if (turn == 0) {
      int64_t next_turn = std::max(me.starving_at(), s->served_ns.load(std::memory_order_relaxed) + kTurnSpacingNs);
      if (now >= next_turn) {
        if (s->turn.compare_exchange_strong(turn, me.id())) s->handoffs.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      until = std::min(until, next_turn);  // wake up to take a turn
    }
    int rc = lock_until(*this, m, until, &waited);
    if (lost()) return on_acquired(rc, grant, "pthread_mutex_lock", me.id(), &busy);
    if (rc == ETIMEDOUT || rc == EINTR) continue;
    if (rc != 0 && rc != EOWNERDEAD) return Status{-rc, "pthread_mutex_lock"};
    st = on_acquired(rc, grant, "pthread_mutex_lock", me.id(), &busy);
    if (!st.ok() || !busy) return st;
  }
}

Status SharedRegion::unlock(bool clean) {
  if (held > 0) --held;
  if (lost()) return refuse(0, "pthread_mutex_unlock");
  MutexState* s = state();
  if (clean) {
    s->holder_pid.store(0, std::memory_order_relaxed);
    s->holder_tid.store(0, std::memory_order_relaxed);
    s->dirty.store(0, std::memory_order_release);
  }
  s->free_since_ms.store(monotonic_ms32() | 1, std::memory_order_relaxed);
  int rc = pthread_mutex_unlock(&s->mutex);
  if (rc != 0) return Status{-rc, "pthread_mutex_unlock"};
  return Status{};
}

}  // namespace interlock
