// The JS handle of an in-flight wait: lets the facade cancel it.
#pragma once

#include <napi.h>

#include "errors.h"

namespace interlock {

class AsyncWait;

class WaitObject : public Napi::ObjectWrap<WaitObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Wraps `wait`, taking over the caller's reference to it.
  static Napi::Value Wrap(Napi::Env env, AsyncWait* wait);

  explicit WaitObject(const Napi::CallbackInfo& info);
  ~WaitObject() override;

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);

  AsyncWait* wait_ = nullptr;
};

// Starts a new wait on its thread and returns its JS handle; `*in_flight`
// (if given) gets a reference of its own. On failure throws, and the wait is
// dropped.
template <typename W>
Napi::Value StartWait(Napi::Env env, W* wait, W** in_flight = nullptr) {
  int err = wait->Begin(env);
  if (err != 0) {
    wait->Orphan();
    return ThrowStatus(env, Status{err, "pthread_create"});
  }
  if (in_flight != nullptr) {
    wait->retain();
    *in_flight = wait;
  }
  return WaitObject::Wrap(env, wait);
}

}  // namespace interlock
