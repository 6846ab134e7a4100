// A counting semaphore shared by every process and thread that opens a name:
// at most `permits` permits are held at once. No Node-API here.
//
// Why System V semaphores and not robust futexes in the region: the count
// lives in a SysV semaphore set taken and given with SEM_UNDO, so when a
// process dies the kernel itself gives its permits back and wakes the
// waiters that can now proceed, in the order they queued; semtimedop gives
// timeouts and fails with EINTR on the interrupter's signal, so waits are
// cancellable without polling. A counter of futexes would need a holder scan
// to recover a dead process's permits. What the kernel does not tell is *who*
// died: that is what the holder records in the /dev/shm region are for. Each
// holds a robust mutex locked by the holder's JS thread, so a record whose
// mutex reports EOWNERDEAD (or that worker teardown marked abandoned) is a
// holder that died, and the next acquirer reports ownerDied.
//
// Large weights: a request of weight > 1 that cannot be granted at once first
// takes the "gate" (the set's second semaphore, 0 when open), one such request
// at a time; every request needs the gate open to take permits, in one atomic
// semop. So once a heavy request waits, no newcomer overtakes it; weight-1
// requests need no gate, because the kernel hands a released permit to its
// queued waiters before any newcomer can take it.
//
// Limits and edges: permits <= SEMVMX (32767). unlink() removes both the name
// and the set: current waiters then fail with EIDRM. A /dev/shm name removed
// by hand leaves its set behind (see `ipcs -s`) and the next opener makes a
// new region and set: old and new users no longer exclude each other, as for
// SharedMutex. A region opened from another IPC namespace names a set that is
// not there (or not ours: the key is checked) and is refused.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "shared_region.h"
#include "status.h"

namespace interlock {

constexpr uint32_t kMaxPermits = 32767;  // SEMVMX

struct SemaphoreHeader {
  uint64_t magic;
  uint32_t permits;
  std::atomic<uint32_t> ready;  // the set exists and the records are initialised
  std::atomic<int32_t> key;     // random IPC key of the set, written before it is made
  std::atomic<int32_t> semid;
  std::atomic<uint64_t> token;  // fencing token, +1 per grant
  // Grants to a waiter the kernel had queued (take() after the try failed):
  // released permits go to queued waiters before any newcomer, so a
  // Semaphore is always in handoff mode while someone waits (issue 14).
  std::atomic<uint64_t> handoffs;
};

// One per possible holder (permits of them: every holder has weight >= 1).
struct alignas(64) HolderRecord {
  pthread_mutex_t mutex;  // robust; locked by the holder's JS thread
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> weight;
  std::atomic<int32_t> pid;
  std::atomic<int32_t> tid;
  std::atomic<int64_t> since_ms;  // CLOCK_REALTIME
};

// A grant: the permits are held and a record names the holder.
struct Permit {
  Grant grant;
  int record = -1;
  uint32_t weight = 0;
};

struct SemaphoreInfo {
  struct Holder {
    int32_t pid, tid;
    uint32_t weight;
    int64_t since_ms;
  };
  uint32_t permits = 0;
  uint32_t available = 0;
  uint32_t waiting = 0;  // the kernel's queued waiters (for permits or the gate)
  uint64_t handoffs = 0;
  std::vector<Holder> holders;
};

class Semaphore {
 public:
  Semaphore() = default;
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // Opens or creates /dev/shm/<name> and its set. ErrorKind::kIncompatible ("open") for
  // a region made with other permits, not a semaphore, or whose set is gone.
  Status open(const std::string& name, uint32_t permits, int mode);
  void close() { region_.unmap(); }
  bool mapped() const { return region_.mapped(); }
  uint32_t permits() const { return permits_; }

  // Takes `weight` permits on the calling thread and records it as holder.
  // *busy (and nothing taken) when they are not free now or the gate is shut.
  Status try_lock(uint32_t weight, Permit* out, bool* busy);
  // Takes `weight` permits, waiting; any thread. Ends with -ECANCELED once
  // *cancel is set (the interrupter's signal wakes semtimedop), -ETIMEDOUT
  // at the deadline. Records no holder: claim() does, on the holder's thread.
  Status take(uint32_t weight, const std::atomic<bool>* cancel, int64_t deadline_ns);
  // Records the calling thread as the holder of `weight` taken permits.
  Status claim(uint32_t weight, Permit* out);
  // Gives back permits taken by take() that nobody claimed.
  Status give(uint32_t weight);
  // Clears the record (clean) or marks it abandoned (teardown: the next
  // holder hears ownerDied), then gives the permits back.
  Status unlock(const Permit& permit, bool clean);

  // The primitive interface (primitive.h). Permits taken with SEM_UNDO
  // belong to the process, not the thread: a wait thread takes them, the
  // holder's thread claims a record, and no thread parks.
  using Held = Permit;
  static constexpr bool kParks = false;
  static constexpr const char* kCall = "semop";
  Status try_lock(const Request& r, Permit* out, bool* busy) { return try_lock(r.weight, out, busy); }
  Status lock(const Request& r, Permit*, const std::atomic<bool>* cancel, int64_t deadline_ns) {
    return take(r.weight, cancel, deadline_ns);
  }
  Status lock_timed(const Request& r, Permit* out, int64_t deadline_ns);
  Status adopt(const Request& r, Permit* out);
  void undo(const Request& r, const Permit&) { give(r.weight); }

  Status info(SemaphoreInfo* out);
  // Removes the set (if the region names one of ours) and the name.
  static Status unlink(const std::string& name);

 private:
  SemaphoreHeader* header() const { return reinterpret_cast<SemaphoreHeader*>(region_.data()); }
  HolderRecord* record(uint32_t i) const;
  Status set_up(int mode);
  Status check_set();
  Status semop_timed(void* ops, unsigned n, const std::atomic<bool>* cancel, int64_t deadline_ns);
  Status take_queued(uint32_t weight, const std::atomic<bool>* cancel, int64_t deadline_ns);
  bool reap(HolderRecord* r, bool keep);

  SharedRegion region_;
  uint32_t permits_ = 0;
  int semid_ = -1;
};

}  // namespace interlock
