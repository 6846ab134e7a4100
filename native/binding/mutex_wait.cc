#include "mutex_wait.h"

#include "shared_mutex_object.h"

namespace interlock {

MutexWait::MutexWait(Napi::Env env, napi_value callback, SharedMutexObject* owner, napi_value self)
    : AsyncWait(env, callback, self), owner_(owner) {}

void MutexWait::run() {
  SharedRegion& region = owner_->region();
  result_ = region.lock(&grant_, cancel_flag(), deadline());
  if (!result_.ok()) return;
  std::unique_lock<std::mutex> lock(mu_);
  if (abandon_ != State::kWaiting) {
    region.unlock(abandon_ == State::kReleaseClean && !grant_.owner_died);
    result_ = Status{-ECANCELED, "pthread_mutex_lock"};
    state_ = State::kDone;
    return;
  }
  state_ = State::kHolding;
  lock.unlock();
  Post();
  lock.lock();
  cv_.wait(lock, [this] { return state_ == State::kReleaseClean || state_ == State::kReleaseDirty; });
  region.unlock(state_ == State::kReleaseClean);
  state_ = State::kDone;
  cv_.notify_all();
}

void MutexWait::Release(bool clean) {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_ == State::kWaiting) {
    abandon_ = clean ? State::kReleaseClean : State::kReleaseDirty;
    return;
  }
  if (state_ != State::kHolding) return;
  state_ = clean ? State::kReleaseClean : State::kReleaseDirty;
  cv_.notify_all();
  cv_.wait(lock, [this] { return state_ == State::kDone; });
}

void MutexWait::Settle() {
  if (result_.ok() && cancel_requested()) {
    // Nobody used this grant; keep "owner died" news for the next holder.
    Release(!grant_.owner_died);
    result_ = Status{-ECANCELED, "pthread_mutex_lock"};
  }
  owner_->WaitSettled(this, result_.ok());
}

Napi::Value MutexWait::Extra(Napi::Env env) {
  if (!result_.ok()) return env.Undefined();
  return SharedMutexObject::GrantValue(env, grant_);
}

}  // namespace interlock
