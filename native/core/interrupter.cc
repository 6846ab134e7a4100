#include "interrupter.h"

#include "clock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

// How long the calling thread has waited on a run queue (runnable, not
// running) since it started, in ns, as the scheduler counts it (the second
// field of /proc/thread-self/schedstat); -1 where the kernel keeps no count.
int64_t queued_ns() {
  int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[96];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  long long ran = 0, queued = 0;
  if (sscanf(buf, "%lld %lld", &ran, &queued) != 2) return -1;
  return queued;
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
    // A nap with a tick armed 1 ms in: interrupted (EINTR) means ticks work.
    // A nap that returned 0 is ambiguous on a loaded machine: the tick may
    // have woken the thread, which then waited on a run queue until past the
    // nap's end (nanosleep returns 0 then): 50-300 ms for a 50 ms nap, and
    // 9 of 96 probes judged "no" by lateness alone, in runs of 32 probes
    // beside 12 busy loops. The scheduler's run-queue count settles it:
    // woken early (asleep well under the nap) means the tick woke it; asleep
    // for most of the nap, with a tick every millisecond, means ticks do not
    // wake a blocked call (qemu-user). Each bound counts the run-queue time
    // around the nap against the side it could favour. Without the count, a
    // nap that ended late is retried with twice the length, and only one on
    // time says "no". Undecided after 3 s, polling is the safe answer.
    for (long nap_ns = 50 * kRepeatNs; nap_ns <= 1600 * kRepeatNs; nap_ns *= 2) {
      int64_t t0 = monotonic_ns();
      int64_t queued0 = queued_ns();
      int64_t t1 = monotonic_ns();
      probe.arm_at(t1 + kRepeatNs);
      timespec nap = {nap_ns / 1000000000, nap_ns % 1000000000}, left = {};
      bool interrupted = nanosleep(&nap, &left) != 0 && errno == EINTR;
      int64_t t2 = monotonic_ns();
      int64_t queued = queued0 < 0 ? -1 : queued_ns() - queued0;
      int64_t t3 = monotonic_ns();
      probe.disarm();
      if (interrupted || (queued >= 0 && t3 - t0 - queued < nap_ns / 2)) {
        ok = true;  // interrupted, or asleep for under half the nap at most
        break;
      }
      bool slept_through = queued >= 0 ? t2 - t1 - queued >= nap_ns / 2 : t2 - t1 < nap_ns + nap_ns / 2;
      if (slept_through) break;
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
