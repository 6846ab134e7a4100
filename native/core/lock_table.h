// The Web Locks lock table: the W3C "lock request queue" and "held lock set"
// of one scope, in a shared region so that every process and thread of the
// user shares one queue and one order. No Node-API here.
//
// Who is alive is the kernel's bookkeeping, never a timer: each client (one
// JS thread) keeps a robust mutex of its slot locked for its whole life. When
// the thread dies (SIGKILL, worker terminated) the kernel's robust-list walk
// marks that word FUTEX_OWNER_DIED and wakes a thread sleeping on it. Any
// table operation sees the mark and reaps the client: its requests leave the
// queue, its locks are released, and the queue is processed again. A waiter
// sleeps (futex_waitv) on its own doorbell and on the life words of the
// holders that block it, so a holder's death wakes it without polling.
// (flock or SEM_UNDO could tell death too, but neither lets one thread sleep
// on "my doorbell rang or any of these holders died" at once.)
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "shared_region.h"
#include "status.h"

namespace interlock {

constexpr uint32_t kLockNameMax = 256;   // UTF-16 code units
constexpr uint32_t kLockClients = 256;   // JS threads per scope at once
constexpr uint32_t kLockEntries = 1024;  // held + pending requests per scope
// The table has no free slot for one more request or client.

enum class LockMode : uint32_t { kExclusive = 0, kShared = 1 };

struct LockInfo {
  std::u16string name;
  LockMode mode;
  int32_t pid;
  int32_t thread;  // the client's JS threadId
};

// A change to one of this client's requests, seen by the table.
struct LockEvent {
  uint64_t id;
  bool granted;  // else lost: stolen, or gone with a damaged table
};

struct TableClient;
struct TableEntry;
struct TableState;

class LockTable {
 public:
  LockTable() = default;
  ~LockTable();
  LockTable(const LockTable&) = delete;
  LockTable& operator=(const LockTable&) = delete;

  // Opens /dev/shm/<region> (refused if another user owns it) and joins as a
  // client. The calling thread owns the client's life until close().
  Status open(const std::string& region, int mode, int32_t thread_id);
  // On the opening thread: leave the queue, release every lock, free the slot.
  void close();
  bool open() const { return state_ != nullptr; }

  struct Outcome {
    uint64_t id = 0;
    bool granted = false;
    bool unavailable = false;  // ifAvailable and not grantable: nothing queued
  };
  // "Request a lock". Own locks broken by a steal become lost events.
  Status request(const char16_t* name, uint32_t length, LockMode mode, bool if_available, bool steal, Outcome* out);
  // "Release the lock"; a request that is no longer in the table is ignored.
  Status release(uint64_t id);
  // "Abort the request": *removed is false once the request was granted.
  Status abort(uint64_t id, bool* removed);
  // "Snapshot the lock state": held in grant order, pending in queue order.
  Status snapshot(std::vector<LockInfo>* held, std::vector<LockInfo>* pending);

  // Events not yet handed to JS (drained by the JS thread).
  std::vector<LockEvent> take_events();
  bool has_events();

  // The watcher thread: find changes, then sleep until something may have
  // changed. deadline_ns bounds the sleep (idle lingering only).
  struct Plan {
    uint32_t bell = 0;
    std::vector<uint32_t*> words;  // life words of blockers
    std::vector<uint32_t> values;  // their expected values
    bool idle = false;             // nothing held or pending here
  };
  Status watch(Plan* plan, bool* posted);
  void sleep(const Plan& plan, int64_t deadline_ns);
  // Wakes this client's watcher (any thread).
  void ring();

  // One watcher per client: claim before starting one; a watcher that finds
  // the client idle retires (false if work arrived meanwhile).
  bool claim_watcher();
  bool retire_watcher();

  // Clients alive in the table (tests).
  uint32_t live_clients();

 private:
  class Locked;
  friend class Locked;

  Status join(int32_t thread_id);
  Status lock_table(bool* repaired);
  void unlock_table();
  void reap_dead();
  void reap(uint32_t client);
  void process(const TableEntry& like, bool ring_all);
  void process_all();
  void kick(uint32_t client);
  void watch_client(Plan* plan, uint32_t client);
  void scan_own();
  int find_free_entry();
  TableEntry* find(uint64_t id);
  void remove(TableEntry* e);

  SharedRegion region_;
  TableState* state_ = nullptr;
  uint32_t self_ = UINT32_MAX;
  // Client-local: serialises this JS thread's operations with its watcher.
  // Always taken before the table's mutex.
  std::mutex mu_;
  struct Known {
    uint32_t slot;
    bool held;
  };
  std::unordered_map<uint64_t, Known> known_;
  std::vector<LockEvent> events_;
  bool watcher_ = false;
};

}  // namespace interlock
