// Handoff turns for a lock kept in shared memory by several processes
// (issue 14), the pieces the kinds share: a turn's id, futex parking on a
// word in a MAP_SHARED region, and a coarse shared clock. The policy itself
// (kStarvingNs, kTurnSpacingNs, kTurnGraceMs) is in shared_region.h. No Node-API here.
#pragma once

#include <atomic>
#include <cstdint>

namespace interlock {

// A turn's id: the waiter's start (CLOCK_MONOTONIC ms, low 32 bits) << 32 |
// its TID; 0 is "no turn". A smaller start has waited longer.
uint64_t turn_id(int64_t since_ns, int32_t tid);
// Whether turn `a` belongs to a waiter that has waited longer than `b`'s.
bool turn_older(uint64_t a, uint64_t b);
// Whether the thread of turn `turn` is gone (kill(tid, 0): ESRCH).
bool turn_thread_gone(uint64_t turn);

// CLOCK_MONOTONIC in ms, low 32 bits (vDSO, no syscall); compare with
// ms_since (wrap-aware: only spans under ~24 days compare right).
uint32_t monotonic_ms32();
int32_t ms_since(uint32_t then);

// Shared (not private) futex ops: the word lives in a MAP_SHARED region.
// futex_wait returns at `until_ns` (CLOCK_MONOTONIC) at the latest, or at
// once if the word is no longer `seen`: 0 when woken, else the errno
// (ETIMEDOUT, EAGAIN, EINTR; EFAULT if the word's page is gone).
int futex_wait(std::atomic<uint32_t>* word, uint32_t seen, int64_t until_ns);
void futex_wake_all(std::atomic<uint32_t>* word);

// Ends `turn` in a kind's shared state (its `turn`, `turn_seq` and
// `deferring` fields) if it is still the pending one, and wakes whoever
// parked behind it. Only the turn's own waiter, or whoever finds it stale,
// ends a turn; one that changed meanwhile is left alone.
template <typename State>
void end_turn_in(State* s, uint64_t turn) {
  if (turn == 0 || !s->turn.compare_exchange_strong(turn, 0)) return;
  s->turn_seq.fetch_add(1);
  if (s->deferring.load() != 0) futex_wake_all(&s->turn_seq);
}

}  // namespace interlock
