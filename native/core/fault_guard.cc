#include "fault_guard.h"

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace interlock {
namespace {

// Read by the signal handler, so fixed-size and lock-free.
constexpr int kSlots = 4096;
struct Slot {
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> len{0};
  std::atomic<bool> lost{false};
};
Slot slots[kSlots];
std::mutex table_mu;  // serialises registration, never taken by the handler
struct sigaction previous;

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

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Slot& s : slots) {
    uintptr_t start = s.start.load(std::memory_order_acquire);
    size_t len = s.len.load(std::memory_order_acquire);
    if (start == 0 || addr < start || addr >= start + len) continue;
    // mmap is a plain syscall on Linux, safe here in practice.
    mmap(reinterpret_cast<void*>(start), len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s.lost.store(true, std::memory_order_release);
    return;
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
  for (int i = 0; i < kSlots; ++i) {
    if (slots[i].start.load(std::memory_order_relaxed) != 0) continue;
    slots[i].lost.store(false, std::memory_order_relaxed);
    slots[i].len.store(len, std::memory_order_release);
    slots[i].start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return i;
  }
  return -1;
}

void unguard_mapping(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(table_mu);
  slots[slot].start.store(0, std::memory_order_release);
  slots[slot].len.store(0, std::memory_order_release);
}

bool mapping_lost(int slot) { return slot >= 0 && slots[slot].lost.load(std::memory_order_acquire); }

}  // namespace interlock
