// flock(2) that can be cancelled and can time out.
#pragma once

#include <atomic>
#include <cstdint>

#include "status.h"

namespace interlock {

// Retries flock(fd, op) across EINTR until it is granted, `cancel` is set
// (-ECANCELED) or `deadline_ns` has passed (-ETIMEDOUT). Something must
// interrupt the call for the last two to be noticed while it blocks: an
// Interrupter armed on this thread. With LOCK_NB in `op` it never blocks.
Status flock_until(int fd, int op, const std::atomic<bool>* cancel, int64_t deadline_ns);

// flock_until, on a thread whose Interrupter is armed for `deadline_ns` (a
// wait thread's), that also returns -ETIMEDOUT at `wake_ns` if that comes
// first: the Interrupter is aimed there for the call, then back.
Status flock_waking(int fd, int op, const std::atomic<bool>* cancel, int64_t deadline_ns, int64_t wake_ns);

// flock on the calling thread with a timeout: arms an Interrupter aimed at
// this thread for the deadline, blocks, disarms. For the *Sync APIs.
Status flock_timed(int fd, int op, int64_t deadline_ns);

}  // namespace interlock
