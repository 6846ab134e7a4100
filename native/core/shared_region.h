// A named shared-memory region under /dev/shm holding a robust,
// process-shared pthread mutex and `data_size` bytes that every process and
// thread mapping the name sees. No Node-API here.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "clock.h"
#include "fault_guard.h"
#include "status.h"

namespace interlock {

// Refused regions: another layout, ABI, data size, or garbage.
constexpr int kIncompatible = -100000;
// A region truncated or overwritten under our mapping: refused from then on.
constexpr int kDamaged = -100001;

struct RegionHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_size;  // offset of the user data
  char abi[32];          // libc/arch/sizeof(pthread_mutex_t)/sizeof(long)
  uint64_t data_size;
  std::atomic<uint32_t> ready;  // set last by the initialiser
  // Set while held; cleared by a clean release. Still set at acquisition
  // means the last holder died or was torn down mid-update.
  std::atomic<uint32_t> dirty;
  std::atomic<uint64_t> token;  // fencing token, +1 per acquisition
  std::atomic<int32_t> holder_pid;
  std::atomic<int32_t> holder_tid;
  std::atomic<int64_t> acquired_at_ms;  // CLOCK_REALTIME, for humans
  alignas(64) pthread_mutex_t mutex;
  // The magic again, after the mutex: a file truncated or zeroed under its
  // users loses it, and that is checked around every acquisition.
  uint64_t canary;
};

// What an acquisition learns.
struct Grant {
  bool owner_died = false;
  uint64_t token = 0;
};

// A process-shared robust mutex (EOWNERDEAD when its holder dies), error
// checking so a thread never deadlocks on its own.
Status init_robust_mutex(pthread_mutex_t* mutex);

class SharedRegion {
 public:
  SharedRegion() = default;
  ~SharedRegion() { unmap(); }
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  // Opens or creates /dev/shm/<name> (the caller validated the name).
  // Creation races safely: whoever holds flock on the file initialises it
  // and sets `ready` last; a region left half-made by a crash is redone.
  // Returns kIncompatible (syscall "open") for a region we must not use.
  Status open(const std::string& name, uint64_t data_size, int mode);
  void unmap();
  bool mapped() const { return header_ != nullptr; }

  RegionHeader* header() const { return header_; }
  uint8_t* data() const { return data_; }
  uint64_t data_size() const { return data_size_; }
  size_t mapping_size() const { return length_; }

  // Lock operations; the calling thread becomes the owner and must unlock.
  // try_lock sets *busy instead of failing when another holder has it.
  Status try_lock(Grant* grant, bool* busy);
  // Waits in short slices so `cancel` is noticed within a few ms.
  Status lock(Grant* grant, const std::atomic<bool>* cancel, int64_t deadline_ns);
  // clean=false (teardown, death) leaves `dirty` set for the next holder.
  Status unlock(bool clean);

  // Reads the header of /dev/shm/<name> without mapping or locking it (for
  // `interlock status`). Fields are a snapshot; kIncompatible if not ours.
  struct Snapshot {
    uint64_t data_size, token;
    bool ready, dirty;
    int32_t holder_pid, holder_tid;
    int64_t acquired_at_ms;
    char abi[32];
  };
  static Status peek(const std::string& name, Snapshot* out);

  static std::string abi_tag();
  static uint64_t region_size(uint64_t data_size);

  // The file was truncated under our mapping (see fault_guard.h).
  bool lost() const { return (guard_ >= 0 && mapping_lost(guard_)) || !intact(); }

 private:
  bool intact() const;
  Status open_fd(int fd, uint64_t data_size);
  Status map_checked(int fd, uint64_t data_size, bool* alone);
  Status initialise(int fd, uint64_t data_size);
  void on_acquired(int rc, Grant* grant);

  RegionHeader* header_ = nullptr;
  uint8_t* data_ = nullptr;
  uint64_t data_size_ = 0;
  size_t length_ = 0;
  int fd_ = -1;     // open, with a shared flock, while mapped
  int guard_ = -1;  // fault_guard slot
};

}  // namespace interlock
