#include "semaphore_wait.h"

#include "semaphore_object.h"

namespace interlock {

SemaphoreWait::SemaphoreWait(Napi::Env env, napi_value callback, SemaphoreObject* owner, napi_value self,
                             uint32_t weight)
    : AsyncWait(env, callback, self), owner_(owner), weight_(weight) {}

void SemaphoreWait::run() { result_ = owner_->semaphore().take(weight_, cancel_flag(), deadline()); }

void SemaphoreWait::Abandon() {
  if (abandoned_) return;
  abandoned_ = true;
  if (result_.ok()) owner_->semaphore().give(weight_);
  result_ = Status{-ECANCELED, "semop"};
}

void SemaphoreWait::Settle() {
  if (!abandoned_ && result_.ok()) {
    if (cancel_requested()) {
      Abandon();
    } else {
      result_ = owner_->semaphore().claim(weight_, &permit_);
      if (!result_.ok()) owner_->semaphore().give(weight_);
    }
  }
  owner_->WaitSettled(this, result_.ok() ? &permit_ : nullptr);
}

Napi::Value SemaphoreWait::Extra(Napi::Env env) {
  return result_.ok() ? SemaphoreObject::Granted(env, permit_) : env.Undefined();
}

}  // namespace interlock
