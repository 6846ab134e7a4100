// Survives another process truncating a shared region we have mapped.
//
// Touching a MAP_SHARED page past the end of its file raises SIGBUS, and the
// region file is writable by every process allowed to use it. A guarded
// mapping that faults is replaced in place by private zero pages (so the
// faulting instruction, ours or JS reading `data`, completes) and marked
// lost; every later operation on it reports the region as unusable instead
// of crashing. Faults anywhere else go to the previous SIGBUS disposition.
#pragma once

#include <cstddef>

namespace interlock {

// Returns a guard slot for [addr, addr+len), or -1 if the table is full
// (the mapping then simply goes unguarded).
int guard_mapping(void* addr, size_t len);
void unguard_mapping(int slot);
bool mapping_lost(int slot);

}  // namespace interlock
