#include "fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>

namespace interlock {
namespace {

// Read by the signal handler, so lock-free: chunks are allocated under
// table_mu, published with a release store and never freed (a handler may be
// reading one while the table grows).
constexpr int kChunkSlots = 4096;
constexpr int kChunks = kMaxGuarded / kChunkSlots;
struct Slot {
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> len{0};
  std::atomic<uintptr_t> lost_at{0};  // 0: intact
};
struct Chunk {
  Slot slots[kChunkSlots];
};
std::atomic<Chunk*> chunks[kChunks];
std::mutex table_mu;  // serialises registration, never taken by the handler
int used_chunks = 0;  // under table_mu
struct sigaction previous;

Slot* slot_at(int i) { return &chunks[i / kChunkSlots].load(std::memory_order_acquire)->slots[i % kChunkSlots]; }

void forward(int sig, siginfo_t* info, void* ctx) {
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, ctx);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
    previous.sa_handler(sig);
  } else {
    // Default action: returning re-runs the faulting access, which now kills
    // the process with SIGBUS as if we had never been here.
    signal(sig, SIG_DFL);
  }
}

bool rescue(Slot& s, uintptr_t addr) {
  uintptr_t start = s.start.load(std::memory_order_acquire);
  size_t len = s.len.load(std::memory_order_acquire);
  if (start == 0 || addr < start || addr >= start + len) return false;
  // sysconf and mmap are plain syscalls or reads on Linux, safe here in practice.
  uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t from = addr & ~(page - 1);
  mmap(reinterpret_cast<void*>(from), start + len - from, PROT_READ | PROT_WRITE,
       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uintptr_t seen = s.lost_at.load(std::memory_order_acquire);
  while ((seen == 0 || from < seen) && !s.lost_at.compare_exchange_weak(seen, from, std::memory_order_acq_rel)) {
  }
  return true;
}

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (auto& c : chunks) {
    Chunk* chunk = c.load(std::memory_order_acquire);
    if (chunk == nullptr) break;
    for (Slot& s : chunk->slots)
      if (rescue(s, addr)) return;
  }
  forward(sig, info, ctx);
}

void install() {
  struct sigaction sa = {};
  sa.sa_sigaction = on_sigbus;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGBUS, &sa, &previous);
}

}  // namespace

int guard_mapping(void* addr, size_t len) {
  static std::once_flag once;
  std::call_once(once, install);
  std::lock_guard<std::mutex> lock(table_mu);
  for (int i = 0; i < kMaxGuarded; ++i) {
    if (i / kChunkSlots >= used_chunks) {
      if (used_chunks == kChunks) return -1;
      auto* fresh = new (std::nothrow) Chunk();
      if (fresh == nullptr) return -1;
      chunks[used_chunks++].store(fresh, std::memory_order_release);
    }
    Slot* s = slot_at(i);
    if (s->start.load(std::memory_order_relaxed) != 0) continue;
    s->lost_at.store(0, std::memory_order_relaxed);
    s->len.store(len, std::memory_order_release);
    s->start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return i;
  }
  return -1;
}

void unguard_mapping(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(table_mu);
  slot_at(slot)->start.store(0, std::memory_order_release);
  slot_at(slot)->len.store(0, std::memory_order_release);
}

const std::atomic<uintptr_t>* lost_mark(int slot) { return &slot_at(slot)->lost_at; }

uintptr_t mapping_lost_at(int slot) { return slot >= 0 ? slot_at(slot)->lost_at.load(std::memory_order_acquire) : 0; }

}  // namespace interlock
