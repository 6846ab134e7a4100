// What every kind of shared region has in common (SharedMutex's today; a
// semaphore's or a lock table's next): a named file under /dev/shm, created
// and initialised under flock, its pages reserved at creation, checked on
// every open (layout, ABI, kind, sizes, PID namespace, owner, broken flag),
// and mapped under the fault guard. No Node-API here.
//
// Layout of a region file (every offset a multiple of 64):
//
//   [RegionHeader][the kind's state: state_size bytes][data_size user bytes]
//
// A new kind defines its state struct (process-shared, robust where it holds
// locks) and opens its regions like this:
//
//   RegionSpec spec{RegionKind::kSemaphore, sizeof(SemState), data_size, mode, allow_foreign_owner};
//   RegionFile file;
//   Status s = file.open(name, spec, init_sem, &permits);  // init_sem(state, arg) runs once, at creation
//   auto* sem = static_cast<SemState*>(file.state());
//
// open() fails with -errno (syscall set) or one of the region codes below,
// which the facade (lib/region.ts) turns into LockErrors.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "status.h"

namespace interlock {

// A region refused or lost says why with Status::kind (status.h): kIncompatible,
// kDamaged, kOtherKind, kOtherPidNs, kForeignOwner, kTooOpen, kBroken, kGuardFull.

enum class RegionKind : uint32_t { kMutex = 1, kSemaphore = 2, kLockTable = 3, kFileMarks = 4 };

// A region header's magic and canary: "INTRLOCK".
constexpr uint64_t kRegionMagic = 0x4b434f4c52544e49ULL;

struct RegionHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t kind;  // RegionKind
  char abi[32];   // libc/arch/sizeof(pthread_mutex_t)/sizeof(long)
  uint64_t state_offset;
  uint64_t state_size;
  uint64_t data_offset;
  uint64_t data_size;
  // The creator's /proc/self/ns/pid. Robust mutexes name their owner by TID,
  // and TIDs collide across PID namespaces, so a region is refused from any
  // other (0/0 when /proc was not mounted: then it matches only the same).
  uint64_t pid_ns_dev;
  uint64_t pid_ns_ino;
  std::atomic<uint32_t> ready;  // set last by the initialiser
  // Set by a user whose mapping faulted (the file was cut under it) while the
  // header survived: its writes may be lost, so nobody may trust the region.
  std::atomic<uint32_t> broken;
  // The magic again: a file zeroed under its users loses it.
  uint64_t canary;
};

struct RegionSpec {
  RegionKind kind;
  uint64_t state_size;  // sizeof the kind's state struct
  uint64_t data_size;   // the user's bytes
  int mode;             // permission bits if created; also the most others may have
  // Adopt a region owned by another user (cooperating users). Without it a
  // region whose owner is not our effective uid is refused (ErrorKind::kForeignOwner).
  bool allow_foreign_owner;
};

// Runs once, at creation, with the whole region zeroed and reserved.
using RegionInit = Status (*)(void* state, void* arg);

class RegionFile {
 public:
  RegionFile() = default;
  ~RegionFile() { unmap(); }
  RegionFile(const RegionFile&) = delete;
  RegionFile& operator=(const RegionFile&) = delete;

  // Opens or creates /dev/shm/<name> (the caller validated the name).
  // Creation races safely: whoever holds flock on the file alone reserves
  // its pages (ENOSPC removes the name again), initialises it and sets
  // `ready` last; a region left half-made by a crash is redone.
  Status open(const std::string& name, const RegionSpec& spec, RegionInit init, void* arg);
  void unmap();
  bool mapped() const { return header_ != nullptr; }

  RegionHeader* header() const { return header_; }
  void* state() const { return state_; }
  uint8_t* data() const { return data_; }
  uint64_t data_size() const { return data_size_; }

  // Pages of the mapping were lost (see fault_guard.h), or the header was
  // overwritten. header_intact(): the header and the kind's state are still
  // the shared ones, so their locks can be released and `broken` set.
  // Inline: every lock operation asks, some more than once.
  bool lost() const {
    return lost_mark_->load(std::memory_order_acquire) != 0 ||
           *static_cast<volatile const uint64_t*>(&header_->canary) != kRegionMagic;
  }
  bool header_intact() const;
  // Marks the region broken for everyone (a no-op if the header is lost).
  void mark_broken();
  bool broken() const { return header_->broken.load(std::memory_order_relaxed) != 0; }

  // After ErrorKind::kForeignOwner/ErrorKind::kTooOpen: the file's owner and mode bits.
  uid_t file_uid() const { return file_uid_; }
  mode_t file_mode() const { return file_mode_; }

  // Reads the header of /dev/shm/<name> and `state_size` bytes of its state
  // into `state`, without mapping or locking it (for `interlock status`).
  // ErrorKind::kOtherKind for another kind, ErrorKind::kIncompatible if not ours.
  static Status peek(const std::string& name, RegionKind kind, RegionHeader* out, void* state, size_t state_size);
  static std::string abi_tag();
  static uint64_t region_size(const RegionSpec& spec);
  // This process's PID namespace, as recorded in headers.
  static void pid_namespace(uint64_t* dev, uint64_t* ino);

 private:
  Status open_fd(int fd, const std::string& path, const RegionSpec& spec, RegionInit init, void* arg);
  Status map_checked(int fd, const std::string& path, const RegionSpec& spec, RegionInit init, void* arg);
  Status create(int fd, const std::string& path, const RegionSpec& spec, RegionInit init, void* arg);
  Status map(int fd, const RegionSpec& spec);

  // Pointers from our own arithmetic, never from the shared header's offsets
  // (anyone who can write the file could aim those anywhere).
  RegionHeader* header_ = nullptr;
  void* state_ = nullptr;
  uint8_t* data_ = nullptr;
  uint64_t data_size_ = 0;
  size_t length_ = 0;
  int fd_ = -1;                                        // open, with a shared flock, while mapped
  int guard_ = -1;                                     // fault_guard slot
  const std::atomic<uintptr_t>* lost_mark_ = nullptr;  // its loss mark, while mapped
  uid_t file_uid_ = 0;
  mode_t file_mode_ = 0;
};

}  // namespace interlock
