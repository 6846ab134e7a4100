// A SharedMutex region (RegionKind::kMutex, see region_file.h): a robust,
// process-shared pthread mutex with its fencing token and holder fields as
// the kind's state, and `data_size` bytes that every process and thread
// mapping the name sees. No Node-API here.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "clock.h"
#include "primitive.h"
#include "region_file.h"
#include "status.h"

namespace interlock {

// The kernel walks at most this many entries of a thread's robust list when
// the thread dies (ROBUST_LIST_LIMIT); a mutex past it would stay locked for
// ever. So one thread never holds more (-ENOLCK); other robust mutexes the
// application holds on that thread are not counted.
constexpr int kRobustListLimit = 2048;

// Handoff mode (issue 14), Go sync.Mutex style: a waiter that has waited
// kStarvingNs takes a *turn*; while a turn is pending nobody else keeps the
// mutex (newcomers and other waiters park on `turn_seq`, a waiter that wins
// the mutex anyway gives it back), so the releaser cannot barge. A turn is
// taken no sooner than kTurnSpacingNs after the last one was served, so a
// holder keeps the cheap barging path between handoffs. A pending turn ends
// when its waiter gets the mutex, gives up (timeout, cancel, teardown), is
// displaced by a waiter that has waited longer, or is found stale: its thread
// is gone, or the mutex stayed free kTurnGraceMs without it being taken.
constexpr int64_t kStarvingNs = 1000 * 1000;
// Under steady contention some waiter is always starving, so this spacing
// sets the handoff rate (about 1 / (spacing + one handoff)). A handoff
// switches threads, not goroutines: the holder's re-take blocks and the
// turn's waiter must get a CPU (an async SharedMutex's wait thread, then its
// JS thread). With 8 processes or 4 x 4 workers on 2 CPUs, spacing turns by
// kStarvingNs (1 ms) gave 300-750 handoffs/s; 4 ms gives about a third of
// that. A waiter still gets its turn once each that waited longer had one.
constexpr int64_t kTurnSpacingNs = 4 * 1000 * 1000;
// Long enough that a waiter merely slow to be scheduled on a loaded machine
// keeps its turn; short enough that a stopped one costs a hiccup, not an outage.
constexpr int64_t kTurnGraceMs = 200;

// The fields fill what used to be padding (before and after the mutex), so
// the state keeps its size and regions made before handoff mode still open;
// their zeroes mean "no turn".
struct MutexState {
  // Set while held; cleared by a clean release. Still set at acquisition
  // means the last holder died or was torn down mid-update.
  std::atomic<uint32_t> dirty;
  std::atomic<uint64_t> token;  // fencing token, +1 per acquisition, 64-bit
  std::atomic<int32_t> holder_pid;
  std::atomic<int32_t> holder_tid;
  std::atomic<int64_t> acquired_at_ms;  // CLOCK_REALTIME, for humans
  // The pending turn: 0, or the waiter's start (CLOCK_MONOTONIC ms, low 32
  // bits) << 32 | its TID. Smaller start = waited longer.
  std::atomic<uint64_t> turn;
  std::atomic<uint32_t> turn_seq;   // futex word: +1 whenever a turn ends
  std::atomic<uint32_t> deferring;  // threads parked on turn_seq
  std::atomic<int64_t> served_ns;   // CLOCK_MONOTONIC when the last turn got the mutex
  // CLOCK_MONOTONIC ms (low 32 bits, never 0) since the mutex is free; 0 while held.
  std::atomic<uint32_t> free_since_ms;
  alignas(64) pthread_mutex_t mutex;
  std::atomic<uint64_t> handoffs;  // turns taken since the region was made
};
static_assert(offsetof(MutexState, mutex) == 64 && sizeof(MutexState) == 128,
              "MutexState must keep the layout regions already have");

// A process-shared robust mutex (EOWNERDEAD when its holder dies), error
// checking so a thread never deadlocks on its own.
Status init_robust_mutex(pthread_mutex_t* mutex);

class SharedRegion {
 public:
  // See RegionFile::open; refusals are its region codes. A kind that needs
  // one robust mutex plus its own bytes (the Semaphore) opens its regions
  // here under its own `kind`, so they are never taken for SharedMutexes.
  Status open(const std::string& name, uint64_t data_size, int mode, bool allow_foreign_owner = false,
              RegionKind kind = RegionKind::kMutex);
  void unmap() { file_.unmap(); }
  bool mapped() const { return file_.mapped(); }

  const RegionFile& file() const { return file_; }
  RegionHeader* header() const { return file_.header(); }
  MutexState* state() const { return static_cast<MutexState*>(file_.state()); }
  uint8_t* data() const { return file_.data(); }
  uint64_t data_size() const { return file_.data_size(); }

  // Lock operations; the calling thread becomes the owner and must unlock.
  // try_lock sets *busy instead of failing when another holder has it.
  // A region that lost pages (ErrorKind::kDamaged) or was marked broken (ErrorKind::kBroken) is
  // refused, and its mutex is never left locked by us.
  Status try_lock(Grant* grant, bool* busy);
  // Waits in short slices so `cancel` is noticed within a few ms.
  // `since_ns` (CLOCK_MONOTONIC) is when the caller began waiting, for a
  // wait made of several calls (sync waits in slices); 0: now.
  Status lock(Grant* grant, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t since_ns = 0);
  // clean=false (teardown, death) leaves `dirty` set for the next holder.
  // ErrorKind::kDamaged if the mapping lost pages while held: writes may be gone, so
  // the region is marked broken for everyone and the real mutex unlocked.
  Status unlock(bool clean);

  // The primitive interface (primitive.h). A pthread mutex belongs to the
  // thread that locked it, so a wait thread that wins it parks, holding it,
  // until the holder releases (see LockWait).
  using Held = Grant;
  static constexpr bool kParks = true;
  static constexpr const char* kCall = "pthread_mutex_lock";
  Status try_lock(const Request&, Grant* grant, bool* busy) { return try_lock(grant, busy); }
  Status lock(const Request& r, Grant* grant, const std::atomic<bool>* cancel, int64_t deadline_ns) {
    return lock(grant, cancel, deadline_ns, r.since_ns);
  }
  Status lock_timed(const Request& r, Grant* grant, int64_t deadline_ns) {
    return lock(grant, nullptr, deadline_ns, r.since_ns);
  }
  Status adopt(const Request&, Grant*) { return Status{}; }

  // The header of /dev/shm/<name> without mapping or locking it (for
  // `interlock status`). Fields are a snapshot; ErrorKind::kIncompatible if not ours,
  // ErrorKind::kOtherKind for another kind of region.
  struct Snapshot {
    uint64_t data_size, token;
    bool ready, dirty, broken, same_pid_ns;
    int32_t holder_pid, holder_tid;
    int64_t acquired_at_ms;
    bool handoff;       // a starving waiter's turn is pending
    uint64_t handoffs;  // turns taken so far
    char abi[32];
  };
  static Status peek(const std::string& name, Snapshot* out);
  // The same, from our own mapping.
  Snapshot snapshot() const;

  static std::string abi_tag() { return RegionFile::abi_tag(); }
  static uint64_t region_size(uint64_t data_size);

  // Pages lost under our mapping, or the header overwritten.
  bool lost() const { return file_.lost(); }

 private:
  Status refuse(int rc, const char* call);
  // `me`: the caller's turn id, 0 for none. Sets *gave_back (and unlocks)
  // when another waiter's turn is pending: the caller did not get it.
  Status on_acquired(int rc, Grant* grant, const char* call, uint64_t me, bool* gave_back);
  // Turns (see kStarvingNs, kTurnSpacingNs).
  void end_turn(uint64_t turn);
  bool turn_stale(uint64_t turn);
  void defer(uint64_t turn, int64_t until_ns);
  class Waiter;

  RegionFile file_;
};

}  // namespace interlock
