// The one wait every lock kind uses: its primitive's lock() on a dedicated
// thread, the result delivered to JS. This is the only place a raced grant
// (won after its request was cancelled or its lock closed) is undone, before
// JS hears anything.
//
// A primitive that must park its thread (P::kParks: a pthread mutex is
// unlocked only by the thread that locked it) keeps the won wait's thread
// holding it until the holder releases.
#pragma once

#include <condition_variable>
#include <mutex>

#include "../core/primitive.h"
#include "async_wait.h"

namespace interlock {

// A grant as JS sees it: token * 2 + ownerDied, a Number while that is exact
// (below 2^53, so the hot path allocates nothing), else a BigInt, so the
// token stays 64-bit and ownerDied its own bit end to end.
Napi::Value GrantValue(Napi::Env env, const Grant& grant);
// The same for a hot-path try: a Number is a heap number V8 allocates the
// slow way (a grant is near 2^52, no small integer), so a grant that fits
// is written to `*at` (the binding's lastGrant) and true is returned; a
// larger one (or any, without lastGrant) is returned as GrantValue makes it.
Napi::Value GrantOut(Napi::Env env, const Grant& grant, double* at);

template <typename Object>
class LockWait : public AsyncWait {
 public:
  using P = typename Object::Primitive;
  using Held = typename P::Held;

  LockWait(Napi::Env env, napi_value callback, napi_value self, Object* owner, const Request& request)
      : AsyncWait(env, callback, self), owner_(owner), request_(request) {}

  const Held& held() const { return held_; }

  // JS thread, as the owner closes (clean=false: teardown, which leaves the
  // holder's "died" mark): a grant of this wait, won or still to come, is
  // let go now, and its delivery reports ECANCELED.
  void Close(bool clean) {
    if constexpr (P::kParks) Release(clean);
    cancel();
    join();
    if constexpr (!P::kParks) {
      if (!abandoned_ && result_.ok()) owner_->primitive().undo(request_, held_);
    }
    abandoned_ = true;
    result_ = Status{-ECANCELED, P::kCall};
  }

  // Parking kinds, JS thread: have the parked thread unlock, and wait until
  // it has, so the next acquisition (here or in another process) finds the
  // lock free. A wait that has not won yet unlocks as soon as it does.
  void Release(bool clean) {
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

 private:
  enum class State { kWaiting, kHolding, kReleaseClean, kReleaseDirty, kDone };

  void run() override {
    result_ = owner_->primitive().lock(request_, &held_, cancel_flag(), deadline());
    if constexpr (P::kParks) {
      if (result_.ok()) Park();
    }
  }

  // Holds the won lock on this thread until Release().
  void Park() {
    P& p = owner_->primitive();
    std::unique_lock<std::mutex> lock(mu_);
    if (abandon_ != State::kWaiting) {
      p.unlock(abandon_ == State::kReleaseClean && !held_.owner_died);
      result_ = Status{-ECANCELED, P::kCall};
      state_ = State::kDone;
      return;
    }
    state_ = State::kHolding;
    lock.unlock();
    Post();
    lock.lock();
    cv_.wait(lock, [this] { return state_ == State::kReleaseClean || state_ == State::kReleaseDirty; });
    p.unlock(state_ == State::kReleaseClean);
    state_ = State::kDone;
    cv_.notify_all();
  }

  void Settle() override {
    if (!abandoned_ && result_.ok()) {
      if (cancel_requested()) {
        // Nobody used this grant; a parked one keeps "owner died" news for
        // the next holder.
        if constexpr (P::kParks) {
          Release(!held_.owner_died);
        } else {
          owner_->primitive().undo(request_, held_);
        }
        result_ = Status{-ECANCELED, P::kCall};
      } else {
        result_ = owner_->primitive().adopt(request_, &held_);
      }
    }
    owner_->WaitSettled(this, result_.ok());
  }

  Napi::Value Extra(Napi::Env env) override { return result_.ok() ? Object::GrantValue(env, held_) : env.Undefined(); }

  Object* owner_;
  Request request_;
  Held held_{};
  bool abandoned_ = false;  // Close() let go of it; nothing left to undo
  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kWaiting;
  State abandon_ = State::kWaiting;  // a Release() that came before the grant
};

}  // namespace interlock
