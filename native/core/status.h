// The result of a system call sequence: ok, a system error (a negative errno
// together with the name of the call that failed, so errors can say
// `syscall` like fs does), or one of interlock's own failures, which have no
// errno and say their `kind` instead.
#pragma once

#include <cerrno>

namespace interlock {

// interlock's own failures. The binding names each for JS (errors.cc) and
// lib/errors.ts words them; keep the three in step.
enum class ErrorKind {
  kNone,
  kIncompatible,      // a region of another layout, ABI or size, or garbage
  kDamaged,           // truncated or overwritten under our mapping
  kOtherKind,         // a region of another kind under that name
  kOtherPidNs,        // made in another PID namespace
  kForeignOwner,      // owned by another user (see RegionSpec)
  kTooOpen,           // writable by users the caller's mode excludes
  kBroken,            // marked broken by a user that lost writes
  kGuardFull,         // the fault guard's table is full
  kUnsafeFilesystem,  // flock(2) may not exclude on the lock file's filesystem
  kTableFull,         // a lock table has no free slot for one more request or client
  kNotReady,          // internal to RegionFile::open: its creator is not done yet
  kStale,             // internal to RegionFile::open: the name was removed under us
};

struct Status {
  int error = 0;  // 0 or -errno
  const char* syscall = nullptr;
  ErrorKind kind = ErrorKind::kNone;  // with error 0

  Status() = default;
  Status(int err, const char* call) : error(err), syscall(call) {}
  Status(ErrorKind k, const char* call) : syscall(call), kind(k) {}

  bool ok() const { return error == 0 && kind == ErrorKind::kNone; }
  static Status fail(const char* call, int err = errno) { return Status{-err, call}; }
};

}  // namespace interlock
