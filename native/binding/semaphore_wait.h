// A contended Semaphore acquisition: a dedicated thread waits in semtimedop;
// the JS thread records itself as holder when the result is delivered.
#pragma once

#include "../core/semaphore.h"
#include "async_wait.h"

namespace interlock {

class SemaphoreObject;

class SemaphoreWait : public AsyncWait {
 public:
  SemaphoreWait(Napi::Env env, napi_value callback, SemaphoreObject* owner, napi_value self, uint32_t weight);

  // JS thread, after join(): gives back permits nobody will claim now (close
  // or teardown); the delivery then reports ECANCELED.
  void Abandon();

 private:
  void run() override;
  // Permits that raced a cancel are given back before the JS callback.
  void Settle() override;
  Napi::Value Extra(Napi::Env env) override;

  SemaphoreObject* owner_;
  uint32_t weight_;
  bool abandoned_ = false;
  Permit permit_;
};

}  // namespace interlock
