// The JS handle of an in-flight wait: lets the facade cancel it.
#pragma once

#include <napi.h>

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

}  // namespace interlock
