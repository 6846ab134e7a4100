// Survives another process truncating a shared region we have mapped.
//
// Touching a MAP_SHARED page past the end of its file raises SIGBUS, and the
// region file is writable by every process allowed to use it. In a guarded
// mapping that faults, the faulting page and every page after it (a
// truncation cuts a suffix, so they are all past the end) are replaced in
// place by private zero pages, so the faulting instruction, ours or JS
// touching `data`, completes; the pages before it stay shared, so a header
// that survived the cut still reaches the real mutex. The slot remembers
// where the loss starts; the region's users turn that into an error (see
// shared_region.h). Faults anywhere else go to the previous SIGBUS disposition.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace interlock {

// Most mappings guarded at once in one process: the table grows in chunks
// of 4,096 slots up to this, and a mapping beyond it is refused, never left
// unguarded (each mapping also holds an fd, so RLIMIT_NOFILE bites first).
constexpr int kMaxGuarded = 4096 * 256;

// Returns a guard slot for [addr, addr+len), or -1 if kMaxGuarded mappings
// are guarded already (or a chunk could not be allocated).
int guard_mapping(void* addr, size_t len);
void unguard_mapping(int slot);
// The slot's loss mark: nonzero once pages were replaced (the address
// mapping_lost_at() reports). It stays where it is while the slot is
// guarded, so a user that checks on every lock operation keeps the pointer
// instead of looking the slot up each time.
const std::atomic<uintptr_t>* lost_mark(int slot);
// The first address replaced by zero pages, or 0 if none was.
uintptr_t mapping_lost_at(int slot);

}  // namespace interlock
