// What every lock kind's primitive offers the binding template
// (native/binding/lock_object.h), so one object and one wait serve them all.
// No Node-API here.
//
// A primitive P (LockFile, SharedRegion, Semaphore) has:
//   using Held = ...;                   what a grant hands its holder
//   static constexpr bool kParks;       a won wait must park its thread until
//                                       release: the primitive is owned by the
//                                       thread that locked it (a pthread mutex)
//   static constexpr const char* kCall; the syscall a cancelled wait names
//   Status try_lock(const Request&, Held*, bool* busy);   never blocks
//   Status lock(const Request&, Held*, const std::atomic<bool>* cancel,
//               int64_t deadline_ns);  on a wait thread, woken by its Interrupter
//   Status lock_timed(const Request&, Held*, int64_t deadline_ns);  on the
//                                       calling thread (the *Sync calls)
//   Status adopt(const Request&, Held*);  on the holder's thread, after lock()
//                                       won on a wait thread; undoes it on failure
//   void undo(const Request&, const Held&);  a grant won by lock() that nobody
//                                       will adopt (unused when kParks)
#pragma once

#include <cstdint>

namespace interlock {

// What one acquisition asks for; each kind reads its own fields.
struct Request {
  bool shared = false;  // LockFile: LOCK_SH instead of LOCK_EX
  uint32_t weight = 1;  // Semaphore: permits at once
  // When the wait began (CLOCK_MONOTONIC ns; 0: now), for a wait made of
  // several calls (sync slices). SharedRegion: when it turns starving.
  int64_t since_ns = 0;
};

// What an acquisition learns.
struct Grant {
  bool owner_died = false;
  uint64_t token = 0;  // fencing token, 0 where the kind keeps none
};

}  // namespace interlock
