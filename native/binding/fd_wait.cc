#include "fd_wait.h"

#include <sys/file.h>

#include "../core/flock.h"
#include "errors.h"
#include "sync_wait.h"
#include "wait_object.h"

namespace interlock {

FdWait::FdWait(Napi::Env env, napi_value callback, int fd, int op)
    : AsyncWait(env, callback, nullptr), fd_(fd), op_(op) {}

void FdWait::run() { result_ = flock_until(fd_, op_, cancel_flag(), deadline()); }

// Returns false only for a non-blocking request that found the lock busy;
// undefined (no lock) if the env stops while it waits.
Napi::Value FdWait::FlockSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 3)) return env.Undefined();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = info[1].As<Napi::Number>().Int32Value();
  double timeout = info[2].As<Napi::Number>().DoubleValue();
  Status s = flock_timed(fd, op | LOCK_NB, kNoDeadline);
  if (s.error == -EWOULDBLOCK && (op & LOCK_NB) == 0) {
    s = WaitOnJsThread(env, deadline_after_ms(timeout), [&](int64_t until) { return flock_timed(fd, op, until); });
  }
  if (s.error == -EWOULDBLOCK && (op & LOCK_NB) != 0) return Napi::Boolean::New(env, false);
  if (!s.ok()) return ThrowStatus(env, s);
  return Napi::Boolean::New(env, true);
}

Napi::Value FdWait::FlockAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 3) || !info[2].IsFunction()) return ThrowType(env, "interlock binding: flockAsync(fd, op, cb)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = info[1].As<Napi::Number>().Int32Value();
  return StartWait(env, new FdWait(env, info[2], fd, op));
}

}  // namespace interlock
