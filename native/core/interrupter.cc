#include "interrupter.h"

#include "clock.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <mutex>

namespace interlock {
namespace {

constexpr long kRepeatNs = 1000000;  // 1 ms between ticks once fired

thread_local int timers_here = 0;  // Interrupters with a timer on this thread
thread_local Interrupter* newest_here = nullptr;

void on_interrupt(int) {}  // the point is the EINTR, not the handler

int install_handler() {
  // Take the highest real-time signal nobody else has claimed. glibc keeps
  // the lowest ones for itself, and Node and libuv use none of them.
  for (int sig = SIGRTMAX; sig >= SIGRTMIN + 2; --sig) {
    struct sigaction old;
    if (sigaction(sig, nullptr, &old) != 0) continue;
    if (old.sa_handler != SIG_DFL) continue;
    struct sigaction sa = {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // deliberately without SA_RESTART
    if (sigaction(sig, &sa, nullptr) == 0) return sig;
  }
  return -EAGAIN;
}

// timer_create and friends go through syscall(2): the glibc wrappers moved
// from librt into libc in 2.34 under a new symbol version, and a prebuilt
// binary must load on older glibc too.
int timer_create_for_thread(int sig, pid_t tid) {
  struct sigevent sev = {};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = sig;
  sev._sigev_un._tid = tid;
  int id = -1;
  if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id) != 0) return -errno;
  return id;
}

int timer_set(int id, int64_t first_ns, bool absolute) {
  struct itimerspec its = {};
  its.it_value.tv_sec = first_ns / 1000000000;
  its.it_value.tv_nsec = first_ns % 1000000000;
  if (!absolute && first_ns == 0) its.it_value.tv_nsec = 1;  // 0 would disarm
  its.it_interval.tv_nsec = first_ns < 0 ? 0 : kRepeatNs;
  if (first_ns < 0) its.it_value = {};
  if (syscall(SYS_timer_settime, id, absolute ? TIMER_ABSTIME : 0, &its, nullptr) != 0) return -errno;
  return 0;
}

}  // namespace

int Interrupter::signal_number() {
  static std::once_flag once;
  static int sig = -EAGAIN;
  std::call_once(once, [] { sig = install_handler(); });
  return sig;
}

bool Interrupter::works() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    Interrupter probe;
    if (!probe.ok()) return;
    bool was_blocked = unblock_interrupt_signal();
    // A sleep that outlived its length says nothing: on a loaded machine the
    // thread may not run again until after both the tick and the sleep's end,
    // and nanosleep then returns 0 though ticks do interrupt (seen under CPU
    // load, 80-300 ms for a 50 ms nap). Only a nap that ended on time without
    // EINTR shows that ticks do not (qemu-user, at the first try). A late one
    // is retried with twice the nap, so the tick has longer to get the thread
    // back on a CPU; after 3 s of naps all late, polling is the safe answer.
    for (long nap_ns = 50 * kRepeatNs; nap_ns <= 1600 * kRepeatNs; nap_ns *= 2) {
      int64_t start = monotonic_ns();
      probe.arm_at(start + kRepeatNs);
      timespec nap = {nap_ns / 1000000000, nap_ns % 1000000000}, left = {};
      bool interrupted = nanosleep(&nap, &left) != 0 && errno == EINTR;
      int64_t slept = monotonic_ns() - start;
      probe.disarm();
      if (interrupted) {
        ok = true;
        break;
      }
      if (slept < nap_ns + nap_ns / 2) break;  // on time, never interrupted
    }
    if (was_blocked) block_interrupt_signal();
  });
  return ok;
}

Interrupter::Interrupter() {
  int sig = signal_number();
  if (sig < 0) return;
  int id = timer_create_for_thread(sig, static_cast<pid_t>(syscall(SYS_gettid)));
  if (id < 0) return;
  timer_ = id;
  ++timers_here;
  outer_ = newest_here;
  newest_here = this;
}

Interrupter::~Interrupter() {
  if (timer_ < 0) return;
  syscall(SYS_timer_delete, timer_);
  --timers_here;
  newest_here = outer_;
}

bool Interrupter::bound_here() { return timers_here > 0; }

Interrupter* Interrupter::here() { return newest_here; }

int Interrupter::arm_at(int64_t deadline_ns) {
  if (timer_ < 0) return -EAGAIN;
  if (deadline_ns <= 0) deadline_ns = 1;
  return timer_set(timer_, deadline_ns, true);
}

int Interrupter::fire_now() {
  if (timer_ < 0) return -EAGAIN;
  return timer_set(timer_, 0, false);
}

int Interrupter::disarm() {
  if (timer_ < 0) return 0;
  return timer_set(timer_, -1, false);
}

bool unblock_interrupt_signal() {
  int sig = Interrupter::signal_number();
  if (sig < 0) return false;
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, &old);
  return sigismember(&old, sig) == 1;
}

void block_interrupt_signal() {
  int sig = Interrupter::signal_number();
  if (sig < 0) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace interlock
