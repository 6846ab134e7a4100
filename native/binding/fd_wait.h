// flock(fd) for callers that own the fd (code moving off fs-ext).
//
// Unlike a lock file, a cancelled wait here is never "granted then
// unlocked": the grant lands on the caller's own open file description, and
// unlocking it could drop a lock the caller already held (flock converts
// sh<->ex in place). So cancel only interrupts; a grant that wins the race is
// reported as a grant.
#pragma once

#include "async_wait.h"

namespace interlock {

class FdWait : public AsyncWait {
 public:
  FdWait(Napi::Env env, napi_value callback, int fd, int op);

  // Module functions: flockSync(fd, op, timeoutMs) -> boolean and
  // flockAsync(fd, op, callback) -> Wait.
  static Napi::Value FlockSync(const Napi::CallbackInfo& info);
  static Napi::Value FlockAsync(const Napi::CallbackInfo& info);

 private:
  void run() override;

  int fd_;
  int op_;
};

}  // namespace interlock
