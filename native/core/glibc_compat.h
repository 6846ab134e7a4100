// Force-included (-include) into every unit of the prebuilt binaries by
// scripts/prebuild.sh, never into source builds, which link against the
// glibc they run on. Linked on Debian 12 (glibc 2.36, GCC 12) the addon would
// need GLIBC_2.34 and GLIBCXX_3.4.30; Node 20 runs on glibc 2.28 and GCC 8's
// libstdc++ (GLIBCXX_3.4.25, RHEL 8). So every reference above those floors
// is bound to the symbol's oldest version, or avoided. scripts/check-glibc.js
// proves the result; a new symbol above the floor fails it.
#ifndef INTERLOCK_CORE_GLIBC_COMPAT_H_
#define INTERLOCK_CORE_GLIBC_COMPAT_H_

#ifndef __cplusplus
#error "glibc_compat.h is for C++ units"
#endif

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// glibc 2.34 moved libpthread into libc and gave each moved symbol a new
// default version; the old ones are still exported. The old versions lived
// in libpthread.so.0, which prebuild.sh adds as a dependency (a stub on 2.34+).
#if defined(__x86_64__)
#define INTERLOCK_GLIBC_BASE "GLIBC_2.2.5"
#define INTERLOCK_GLIBC_ROBUST "GLIBC_2.12"  // robust mutexes came in 2.12
#elif defined(__aarch64__)
#define INTERLOCK_GLIBC_BASE "GLIBC_2.17"  // aarch64's first glibc
#define INTERLOCK_GLIBC_ROBUST "GLIBC_2.17"
#else
#error "glibc_compat.h: prebuilds are made for x86_64 and aarch64 only"
#endif

#define INTERLOCK_PIN(sym, ver) __asm__(".symver " #sym "," #sym "@" ver)
INTERLOCK_PIN(pthread_create, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_once, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_sigmask, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_attr_setstacksize, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_mutex_trylock, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_mutexattr_init, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_mutexattr_destroy, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_mutexattr_settype, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_mutexattr_setpshared, INTERLOCK_GLIBC_BASE);
INTERLOCK_PIN(pthread_mutexattr_setrobust, INTERLOCK_GLIBC_ROBUST);
INTERLOCK_PIN(pthread_mutex_consistent, INTERLOCK_GLIBC_ROBUST);

// fstat is an exported function only since glibc 2.33 (before, an inline
// wrapper of __fxstat64). prebuild.sh links with --wrap=fstat64, which sends
// calls here: the same syscall glibc makes, as the kernel's struct stat is
// glibc's on both 64-bit targets.
extern "C" __attribute__((weak, visibility("hidden"))) int __wrap_fstat64(int fd, struct stat64* st) {
  return static_cast<int>(syscall(SYS_fstat, fd, st));
}

// libstdc++'s inline code calls pthread_cond_clockwait (glibc 2.30) when these
// are set; unset, it waits with pthread_cond_timedwait on the system clock.
// Only wait-thread linger timeouts (wait.cc) go through condition_variable.
#include <bits/c++config.h>
#undef _GLIBCXX_USE_PTHREAD_COND_CLOCKWAIT
#undef _GLIBCXX_USE_PTHREAD_MUTEX_CLOCKLOCK
#undef _GLIBCXX_USE_PTHREAD_RWLOCK_CLOCKLOCK

// GCC 12 headers bind condition_variable::wait to a noexcept copy made in
// GLIBCXX_3.4.30; the GLIBCXX_3.4.11 one does the same wait.
INTERLOCK_PIN(_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE, "GLIBCXX_3.4.11");

#include <bits/functexcept.h>
namespace std {
// allocator<T>::allocate calls this on size overflow since GCC 11; libstdc++
// only has it from GLIBCXX_3.4.29. A hidden local copy throws its base class
// (we build without exceptions, so either one ends in std::terminate).
__attribute__((weak, visibility("hidden"))) void __throw_bad_array_new_length() { __throw_bad_alloc(); }
}  // namespace std

#endif  // INTERLOCK_CORE_GLIBC_COMPAT_H_
