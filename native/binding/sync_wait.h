// A blocking wait on the JS thread itself (acquireSync, flockSync) that ends
// when its environment stops. process.exit() and worker.terminate() join a
// worker's thread before any cleanup hook of ours can run there, and nothing
// from outside can wake a thread blocked in flock(2) or on a futex for that.
// So the wait runs in slices and, between them, asks Node-API whether the
// environment may still run JS: Node refuses once it is stopping.
#pragma once

#include <napi.h>

#include <cerrno>

#include "../core/clock.h"
#include "../core/status.h"

namespace interlock {

// How long a sync wait blocks between two looks at its environment: the
// longest it can delay process.exit() or terminate().
constexpr int64_t kSyncSliceNs = 20 * 1000 * 1000;

// Whether `env` is being torn down (no JS will run on it again).
bool EnvStopping(napi_env env);

// Runs `attempt(until)`, a blocking lock attempt that gives up with
// -ETIMEDOUT at `until`, slice after slice until it is granted, fails, passes
// `deadline_ns`, or the environment stops (-ECANCELED: not granted).
template <typename Attempt>
Status WaitOnJsThread(napi_env env, int64_t deadline_ns, Attempt&& attempt) {
  for (;;) {
    int64_t until = monotonic_ns() + kSyncSliceNs;
    bool last = deadline_ns != kNoDeadline && deadline_ns <= until;
    Status s = attempt(last ? deadline_ns : until);
    if (last || s.error != -ETIMEDOUT) return s;
    if (EnvStopping(env)) return Status{-ECANCELED, s.syscall};
  }
}

}  // namespace interlock
