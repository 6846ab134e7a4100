// Linked into the test binaries of the TSan build only.
//
// GCC 12's libtsan has no interceptor for pthread_mutex_clocklock (LLVM's
// compiler-rt added one later), so TSan never sees SharedRegion::lock take
// the mutex and reports the matching pthread_mutex_unlock as "unlock of an
// unlocked mutex (or by a wrong thread)" — a false report, and worse, it
// would hide a real wrong-thread unlock and miss the acquire's ordering.
// This is the missing interceptor, written with TSan's public annotations:
// the real glibc function still does the locking. The newer interceptor
// also "repairs" TSan's owner record on EOWNERDEAD, which the public API
// cannot do; tests that need that (a thread of this process died holding
// the mutex) take the mutex with try_lock, whose interceptor does repair.
#include <dlfcn.h>
#include <pthread.h>
#include <sanitizer/tsan_interface.h>

#include <cerrno>
#include <ctime>

namespace {

using ClockLock = int (*)(pthread_mutex_t*, clockid_t, const timespec*);

ClockLock real_clocklock() {
  static ClockLock real = reinterpret_cast<ClockLock>(dlsym(RTLD_NEXT, "pthread_mutex_clocklock"));
  return real;
}

}  // namespace

extern "C" int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock, const timespec* abstime) {
  ClockLock real = real_clocklock();
  if (real == nullptr) return ENOSYS;
  // It may time out, so it is annotated like a trylock.
  __tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
  int rc = real(m, clock, abstime);
  bool got = rc == 0 || rc == EOWNERDEAD;
  __tsan_mutex_post_lock(m, got ? __tsan_mutex_try_lock : __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed, 0);
  return rc;
}
