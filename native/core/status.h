// The result of a system call sequence: 0, or a negative errno together with
// the name of the call that failed, so errors can say `syscall` like fs does.
#pragma once

#include <cerrno>

namespace interlock {

struct Status {
  int error = 0;  // 0 or -errno
  const char* syscall = nullptr;

  bool ok() const { return error == 0; }
  static Status fail(const char* call, int err = errno) { return Status{-err, call}; }
};

}  // namespace interlock
