#include "lock_table.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449  // the same number on x86_64 and aarch64
#endif

namespace interlock {

namespace {

constexpr uint32_t kFormat = 0x57424c31;  // "WBL1": client mutexes initialised
constexpr uint32_t kFree = 0, kPending = 1, kHeld = 2;

}  // namespace

struct TableClient {
  pthread_mutex_t life;        // locked by the client's JS thread while it lives
  std::atomic<uint32_t> bell;  // futex word: +1 and woken on every change for this client
  std::atomic<uint32_t> live;
  int32_t pid;
  int32_t thread;
};

struct TableEntry {
  std::atomic<uint32_t> state;  // written last when filled, first when freed
  uint32_t mode;
  uint32_t client;
  uint32_t length;
  uint32_t hash;
  int64_t order;     // position in the lock request queue
  uint64_t granted;  // position in the held lock set
  uint64_t id;
  char16_t name[kLockNameMax];

  bool same_name(const TableEntry& o) const {
    return hash == o.hash && length == o.length && std::memcmp(name, o.name, length * sizeof(char16_t)) == 0;
  }
};

struct TableState {
  uint32_t format;
  uint32_t clients_used;  // high-water marks bound every scan
  uint32_t entries_used;
  int64_t front;  // "prepend" (steal) takes front - 1, "enqueue" back + 1
  int64_t back;
  uint64_t next_id;
  uint64_t next_grant;
  TableClient clients[kLockClients];
  TableEntry entries[kLockEntries];
};

namespace {

// The futex word inside a robust pthread mutex: the owner's TID, with
// FUTEX_WAITERS and FUTEX_OWNER_DIED as the kernel's robust list sets them.
uint32_t* life_word(pthread_mutex_t* m) {
#if defined(__GLIBC__)
  return reinterpret_cast<uint32_t*>(&m->__data.__lock);
#else
  return reinterpret_cast<uint32_t*>(&m->__u.__vi[1]);  // musl's _m_lock
#endif
}

uint32_t load_word(uint32_t* w) { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }

uint32_t hash_name(const char16_t* name, uint32_t length) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < length; ++i) h = (h ^ name[i]) * 16777619u;
  return h;
}

void futex_wake_all(void* word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0); }

struct FutexWaitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
constexpr uint32_t kFutex32 = 2;
constexpr size_t kWaitvMax = 128;

// lstat through syscall(2): glibc exports its stat functions as symbols only
// since 2.33, and prebuilds must load on 2.28 (scripts/check-glibc.js).
int lstat_path(const std::string& path, struct stat* st) {
  return static_cast<int>(syscall(SYS_newfstatat, AT_FDCWD, path.c_str(), st, AT_SYMLINK_NOFOLLOW));
}

bool init_life(pthread_mutex_t* m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc == 0;
}

}  // namespace

// Holds the table's mutex; on the way in, repairs what a dead client left:
// a holder of the table mutex that died may have stopped mid-update, so the
// whole queue is processed again.
class LockTable::Locked {
 public:
  explicit Locked(LockTable* t) : t_(t) {
    bool repaired = false;
    status = t->lock_table(&repaired);
    if (!status.ok()) return;
    t->reap_dead();
    if (repaired) t->process_all();
  }
  ~Locked() {
    if (status.ok()) t_->unlock_table();
  }
  Status status;

 private:
  LockTable* t_;
};

LockTable::~LockTable() { close(); }

Status LockTable::lock_table(bool* repaired) {
  Grant grant;
  Status st = region_.lock(&grant, nullptr, kNoDeadline);
  if (!st.ok()) return st;
  *repaired = grant.owner_died;
  if (state_->format != kFormat) {
    for (auto& c : state_->clients) {
      if (!init_life(&c.life)) {
        region_.unlock(false);
        return Status{-ENOMEM, "pthread_mutex_init"};
      }
    }
    state_->format = kFormat;
  }
  return st;
}

void LockTable::unlock_table() { region_.unlock(true); }

// Another user's file at our name is refused before it is opened (opening
// may initialise it), and again after, in case it was swapped meanwhile.
Status LockTable::open(const std::string& region, int mode, int32_t thread_id) {
  std::string path = "/dev/shm/" + region;
  struct stat sb;
  if (lstat_path(path, &sb) == 0 && sb.st_uid != geteuid()) return Status{ErrorKind::kIncompatible, "open"};
  Status st = region_.open(region, sizeof(TableState), mode, false, RegionKind::kLockTable);
  if (!st.ok()) return st;
  if (lstat_path(path, &sb) != 0 || sb.st_uid != geteuid()) {
    region_.unmap();
    return Status{ErrorKind::kIncompatible, "open"};
  }
  state_ = reinterpret_cast<TableState*>(region_.data());
  st = join(thread_id);
  if (!st.ok()) {
    state_ = nullptr;
    region_.unmap();
  }
  return st;
}

Status LockTable::join(int32_t thread_id) {
  std::lock_guard<std::mutex> guard(mu_);
  Locked locked(this);
  if (!locked.status.ok()) return locked.status;
  for (uint32_t i = 0; i < kLockClients; ++i) {
    TableClient& c = state_->clients[i];
    if (c.live.load(std::memory_order_acquire) != 0) continue;
    int rc = pthread_mutex_trylock(&c.life);
    if (rc == EOWNERDEAD) {
      pthread_mutex_consistent(&c.life);  // a thread died between taking and publishing it
      rc = 0;
    }
    if (rc != 0) continue;
    c.pid = static_cast<int32_t>(getpid());
    c.thread = thread_id;
    c.live.store(1, std::memory_order_release);
    self_ = i;
    state_->clients_used = std::max(state_->clients_used, i + 1);
    return Status{};
  }
  return Status{ErrorKind::kTableFull, "open"};
}

void LockTable::close() {
  if (state_ == nullptr) return;
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (self_ != UINT32_MAX) {
      Locked locked(this);
      if (locked.status.ok()) {
        TableClient& me = state_->clients[self_];
        std::vector<uint32_t> touched;
        for (uint32_t i = 0; i < state_->entries_used; ++i) {
          TableEntry& e = state_->entries[i];
          if (e.state.load(std::memory_order_relaxed) != kFree && e.client == self_) touched.push_back(i);
        }
        for (uint32_t i : touched) state_->entries[i].state.store(kFree, std::memory_order_release);
        for (uint32_t i : touched) process(state_->entries[i], true);
        me.live.store(0, std::memory_order_release);
        pthread_mutex_unlock(&me.life);
        futex_wake_all(life_word(&me.life));
      }
      self_ = UINT32_MAX;
    }
    known_.clear();
  }
  state_ = nullptr;
  region_.unmap();
}

// A client whose life word carries FUTEX_OWNER_DIED has died: the kernel
// marked it when the thread exited. trylock then hands us the mutex.
void LockTable::reap_dead() {
  for (uint32_t i = 0; i < state_->clients_used; ++i) {
    TableClient& c = state_->clients[i];
    if (c.live.load(std::memory_order_acquire) == 0) continue;
    if ((load_word(life_word(&c.life)) & FUTEX_OWNER_DIED) == 0) continue;
    reap(i);
  }
}

void LockTable::reap(uint32_t client) {
  TableClient& c = state_->clients[client];
  int rc = pthread_mutex_trylock(&c.life);
  if (rc != EOWNERDEAD) {
    if (rc == 0) pthread_mutex_unlock(&c.life);
    return;
  }
  pthread_mutex_consistent(&c.life);
  std::vector<uint32_t> gone;
  for (uint32_t i = 0; i < state_->entries_used; ++i) {
    TableEntry& e = state_->entries[i];
    if (e.state.load(std::memory_order_relaxed) != kFree && e.client == client) gone.push_back(i);
  }
  for (uint32_t i : gone) state_->entries[i].state.store(kFree, std::memory_order_release);
  c.live.store(0, std::memory_order_release);
  pthread_mutex_unlock(&c.life);
  futex_wake_all(life_word(&c.life));  // everyone who slept on the dead client
  for (uint32_t i : gone) process(state_->entries[i], true);
}

void LockTable::kick(uint32_t client) {
  TableClient& c = state_->clients[client];
  c.bell.fetch_add(1, std::memory_order_acq_rel);
  futex_wake_all(&c.bell);
}

// "Process the lock request queue", for the one name that changed: whether a
// request is grantable depends only on requests and locks of its own name,
// so the other names' requests would not move. The granted are rung. A
// waiter watches the holders and the request just ahead of it (see watch()),
// which stay right when a holder leaves or the one ahead is granted; when a
// request leaves the queue otherwise (abort, death, steal), everyone still
// waiting on the name is rung (ring_all) to watch anew.
void LockTable::process(const TableEntry& like, bool ring_all) {
  bool held_any = false, held_exclusive = false;
  std::vector<TableEntry*> queue;
  for (uint32_t i = 0; i < state_->entries_used; ++i) {
    TableEntry& e = state_->entries[i];
    uint32_t s = e.state.load(std::memory_order_relaxed);
    if (s == kFree || !e.same_name(like)) continue;
    if (s == kHeld) {
      held_any = true;
      if (e.mode == static_cast<uint32_t>(LockMode::kExclusive)) held_exclusive = true;
    } else {
      queue.push_back(&e);
    }
  }
  std::sort(queue.begin(), queue.end(), [](const TableEntry* a, const TableEntry* b) { return a->order < b->order; });
  // "grantable": exclusive when no lock of the name is held and no earlier
  // request has the name; shared when no exclusive one is held or earlier.
  bool earlier_any = false, earlier_exclusive = false;
  for (TableEntry* e : queue) {
    bool exclusive = e->mode == static_cast<uint32_t>(LockMode::kExclusive);
    bool grantable = exclusive ? !held_any && !earlier_any : !held_exclusive && !earlier_exclusive;
    if (grantable) {
      e->granted = ++state_->next_grant;
      e->state.store(kHeld, std::memory_order_release);
      held_any = true;
      held_exclusive = held_exclusive || exclusive;
    } else {
      earlier_any = true;
      earlier_exclusive = earlier_exclusive || exclusive;
    }
    if (e->client == self_ || !(grantable || ring_all)) continue;  // scan_own() reports ours
    kick(e->client);
  }
  scan_own();
}

void LockTable::process_all() {
  for (uint32_t i = 0; i < state_->entries_used; ++i) {
    if (state_->entries[i].state.load(std::memory_order_relaxed) == kPending) process(state_->entries[i], true);
  }
}

// Turns what happened to this client's requests into events for JS: losses
// first, then grants in grant order, so callbacks run in queue order.
void LockTable::scan_own() {
  std::vector<std::pair<uint64_t, LockEvent>> grants;
  for (auto it = known_.begin(); it != known_.end();) {
    TableEntry& e = state_->entries[it->second.slot];
    uint32_t s = e.state.load(std::memory_order_acquire);
    if (s == kFree || e.id != it->first) {
      events_.push_back(LockEvent{it->first, false});
      it = known_.erase(it);
      continue;
    }
    if (s == kHeld && !it->second.held) {
      it->second.held = true;
      grants.emplace_back(e.granted, LockEvent{it->first, true});
    }
    ++it;
  }
  std::sort(grants.begin(), grants.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& g : grants) events_.push_back(g.second);
}

int LockTable::find_free_entry() {
  for (uint32_t i = 0; i < kLockEntries; ++i) {
    if (state_->entries[i].state.load(std::memory_order_relaxed) == kFree) {
      state_->entries_used = std::max(state_->entries_used, i + 1);
      return static_cast<int>(i);
    }
  }
  return -1;
}

TableEntry* LockTable::find(uint64_t id) {
  auto it = known_.find(id);
  if (it == known_.end()) return nullptr;
  TableEntry& e = state_->entries[it->second.slot];
  if (e.state.load(std::memory_order_relaxed) == kFree || e.id != id) return nullptr;
  return &e;
}

void LockTable::remove(TableEntry* e) {
  e->state.store(kFree, std::memory_order_release);
  while (state_->entries_used > 0 &&
         state_->entries[state_->entries_used - 1].state.load(std::memory_order_relaxed) == kFree) {
    --state_->entries_used;
  }
}

Status LockTable::request(const char16_t* name, uint32_t length, LockMode mode, bool if_available, bool steal,
                          Outcome* out) {
  *out = Outcome{};
  if (length > kLockNameMax) return Status{-ENAMETOOLONG, "request"};
  std::lock_guard<std::mutex> guard(mu_);
  if (self_ == UINT32_MAX) return Status{-EBADF, "request"};
  Locked locked(this);
  if (!locked.status.ok()) return locked.status;
  TableEntry probe;
  std::memcpy(probe.name, name, length * sizeof(char16_t));
  probe.length = length;
  probe.hash = hash_name(name, length);
  bool exclusive = mode == LockMode::kExclusive;

  if (steal) {
    // Every held lock of the name is removed; its owner hears it as lost.
    for (uint32_t i = 0; i < state_->entries_used; ++i) {
      TableEntry& e = state_->entries[i];
      if (e.state.load(std::memory_order_relaxed) != kHeld || !e.same_name(probe)) continue;
      e.state.store(kFree, std::memory_order_release);
      if (e.client != self_) kick(e.client);
    }
  } else if (if_available) {
    // Not grantable if queued at the back: a conflicting lock is held or a
    // conflicting request is already queued for the name.
    for (uint32_t i = 0; i < state_->entries_used; ++i) {
      TableEntry& e = state_->entries[i];
      if (e.state.load(std::memory_order_relaxed) == kFree || !e.same_name(probe)) continue;
      if (exclusive || e.mode == static_cast<uint32_t>(LockMode::kExclusive)) {
        out->unavailable = true;
        scan_own();
        return Status{};
      }
    }
  }
  int slot = find_free_entry();
  if (slot < 0) {
    scan_own();
    return Status{ErrorKind::kTableFull, "request"};
  }
  TableEntry& e = state_->entries[slot];
  std::memcpy(e.name, name, length * sizeof(char16_t));
  e.length = length;
  e.hash = probe.hash;
  e.mode = static_cast<uint32_t>(mode);
  e.client = self_;
  e.granted = 0;
  e.order = steal ? --state_->front : ++state_->back;
  e.id = ++state_->next_id;
  e.state.store(kPending, std::memory_order_release);
  known_.emplace(e.id, Known{static_cast<uint32_t>(slot), false});
  process(e, steal);
  out->id = e.id;
  // This request's own grant is the answer, not an event.
  auto ev = std::find_if(events_.begin(), events_.end(), [&](const LockEvent& x) { return x.id == e.id; });
  if (ev != events_.end()) {
    out->granted = true;
    events_.erase(ev);
  } else {
    ring();  // the watcher must now watch this request's blockers
  }
  return Status{};
}

Status LockTable::release(uint64_t id) {
  std::lock_guard<std::mutex> guard(mu_);
  if (self_ == UINT32_MAX) return Status{};
  Locked locked(this);
  if (!locked.status.ok()) return locked.status;
  TableEntry* e = find(id);
  auto it = known_.find(id);
  if (it != known_.end()) known_.erase(it);
  if (e == nullptr) return Status{};
  remove(e);
  process(*e, false);
  return Status{};
}

Status LockTable::abort(uint64_t id, bool* removed) {
  *removed = false;
  std::lock_guard<std::mutex> guard(mu_);
  if (self_ == UINT32_MAX) return Status{};
  Locked locked(this);
  if (!locked.status.ok()) return locked.status;
  TableEntry* e = find(id);
  if (e == nullptr || e->state.load(std::memory_order_relaxed) != kPending) return Status{};
  auto it = known_.find(id);
  if (it == known_.end() || it->second.held) return Status{};  // granted; its event is on the way
  known_.erase(it);
  remove(e);
  process(*e, true);
  *removed = true;
  return Status{};
}

Status LockTable::snapshot(std::vector<LockInfo>* held, std::vector<LockInfo>* pending) {
  std::lock_guard<std::mutex> guard(mu_);
  Locked locked(this);
  if (!locked.status.ok()) return locked.status;
  std::vector<const TableEntry*> h, p;
  for (uint32_t i = 0; i < state_->entries_used; ++i) {
    const TableEntry& e = state_->entries[i];
    uint32_t s = e.state.load(std::memory_order_relaxed);
    if (s == kHeld) h.push_back(&e);
    if (s == kPending) p.push_back(&e);
  }
  std::sort(h.begin(), h.end(), [](const TableEntry* a, const TableEntry* b) { return a->granted < b->granted; });
  std::sort(p.begin(), p.end(), [](const TableEntry* a, const TableEntry* b) { return a->order < b->order; });
  auto info = [this](const TableEntry* e) {
    const TableClient& c = state_->clients[e->client];
    return LockInfo{std::u16string(e->name, e->length), static_cast<LockMode>(e->mode), c.pid, c.thread};
  };
  for (const TableEntry* e : h) held->push_back(info(e));
  for (const TableEntry* e : p) pending->push_back(info(e));
  return Status{};
}

std::vector<LockEvent> LockTable::take_events() {
  std::lock_guard<std::mutex> guard(mu_);
  std::vector<LockEvent> out;
  out.swap(events_);
  return out;
}

bool LockTable::has_events() {
  std::lock_guard<std::mutex> guard(mu_);
  return !events_.empty();
}

Status LockTable::watch(Plan* plan, bool* posted) {
  plan->words.clear();
  plan->values.clear();
  std::lock_guard<std::mutex> guard(mu_);
  *posted = false;
  if (self_ == UINT32_MAX) {
    plan->idle = true;
    return Status{};
  }
  Locked locked(this);
  if (!locked.status.ok()) return locked.status;
  scan_own();
  *posted = !events_.empty();
  plan->idle = known_.empty();
  plan->bell = state_->clients[self_].bell.load(std::memory_order_acquire);
  // What blocks each pending request of ours: the holders of its name, and
  // the request just ahead of it, which blocks it now or holds later. Their
  // death must wake us; anything else that changes them rings us (process()).
  for (const auto& [id, k] : known_) {
    if (k.held) continue;
    const TableEntry& mine = state_->entries[k.slot];
    const TableEntry* ahead = nullptr;
    for (uint32_t i = 0; i < state_->entries_used; ++i) {
      const TableEntry& e = state_->entries[i];
      uint32_t s = e.state.load(std::memory_order_relaxed);
      if (s == kFree || !e.same_name(mine)) continue;
      if (s == kHeld) {
        watch_client(plan, e.client);
      } else if (e.order < mine.order && (ahead == nullptr || e.order > ahead->order)) {
        ahead = &e;
      }
    }
    if (ahead != nullptr) watch_client(plan, ahead->client);
  }
  return Status{};
}

void LockTable::watch_client(Plan* plan, uint32_t client) {
  if (client == self_ || plan->words.size() + 1 >= kWaitvMax) return;
  uint32_t* w = life_word(&state_->clients[client].life);
  if (std::find(plan->words.begin(), plan->words.end(), w) != plan->words.end()) return;
  // The kernel wakes a waiter of a dead owner's word only if FUTEX_WAITERS is
  // set; its owner never unlocks while alive, so the bit costs it nothing.
  uint32_t v = load_word(w);
  while ((v & FUTEX_OWNER_DIED) == 0 && (v & FUTEX_WAITERS) == 0 &&
         !__atomic_compare_exchange_n(w, &v, v | FUTEX_WAITERS, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
  }
  plan->words.push_back(w);
  // Died since this operation's reaping: a value that cannot match makes the
  // sleep return at once, and the next round reaps it.
  plan->values.push_back((v & FUTEX_OWNER_DIED) != 0 ? ~v : v | FUTEX_WAITERS);
}

void LockTable::sleep(const Plan& plan, int64_t deadline_ns) {
  if (state_ == nullptr || self_ == UINT32_MAX) return;
  FutexWaitv waiters[kWaitvMax];
  size_t n = 0;
  waiters[n++] = FutexWaitv{plan.bell, reinterpret_cast<uintptr_t>(&state_->clients[self_].bell), kFutex32, 0};
  for (size_t i = 0; i < plan.words.size() && n < kWaitvMax; ++i) {
    waiters[n++] = FutexWaitv{plan.values[i], reinterpret_cast<uintptr_t>(plan.words[i]), kFutex32, 0};
  }
  timespec ts;
  timespec* timeout = nullptr;
  if (deadline_ns != kNoDeadline) {
    ts.tv_sec = deadline_ns / 1000000000;
    ts.tv_nsec = deadline_ns % 1000000000;
    timeout = &ts;
  }
  long rc = syscall(SYS_futex_waitv, waiters, n, 0, timeout, CLOCK_MONOTONIC);
  if (rc < 0 && errno == ENOSYS) {
    // Before Linux 5.16: the doorbell only; a blocker's death is then seen
    // at the next table operation by anyone (documented in the README).
    timespec rel;
    timespec* rel_p = nullptr;
    if (deadline_ns != kNoDeadline) {
      int64_t left = std::max<int64_t>(0, deadline_ns - monotonic_ns());
      rel.tv_sec = left / 1000000000;
      rel.tv_nsec = left % 1000000000;
      rel_p = &rel;
    }
    syscall(SYS_futex, &state_->clients[self_].bell, FUTEX_WAIT, plan.bell, rel_p, nullptr, 0);
  }
}

void LockTable::ring() {
  if (state_ == nullptr || self_ == UINT32_MAX) return;
  kick(self_);
}

bool LockTable::claim_watcher() {
  std::lock_guard<std::mutex> guard(mu_);
  if (watcher_) return false;
  watcher_ = true;
  return true;
}

bool LockTable::retire_watcher() {
  std::lock_guard<std::mutex> guard(mu_);
  if (!known_.empty() || !events_.empty()) return false;
  watcher_ = false;
  return true;
}

uint32_t LockTable::live_clients() {
  std::lock_guard<std::mutex> guard(mu_);
  Locked locked(this);
  if (!locked.status.ok()) return 0;
  uint32_t n = 0;
  for (uint32_t i = 0; i < state_->clients_used; ++i) n += state_->clients[i].live.load(std::memory_order_relaxed);
  return n;
}

}  // namespace interlock
