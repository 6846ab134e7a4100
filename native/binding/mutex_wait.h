// A contended SharedMutex acquisition. A pthread mutex must be unlocked by
// the thread that locked it, so the dedicated thread that wins the mutex
// stays parked, holding it, until the JS handle is released.
#pragma once

#include <condition_variable>
#include <mutex>

#include "../core/shared_region.h"
#include "async_wait.h"

namespace interlock {

class SharedMutexObject;

class MutexWait : public AsyncWait {
 public:
  MutexWait(Napi::Env env, napi_value callback, SharedMutexObject* owner, napi_value self);

  // JS thread: have the parked thread unlock, and wait until it has, so the
  // next acquisition (here or in another process) finds the mutex free.
  // clean=false leaves the region's dirty flag set (teardown). If the wait
  // has not won the mutex yet, it will unlock as soon as it does.
  void Release(bool clean);
  const Grant& grant() const { return grant_; }

 private:
  enum class State { kWaiting, kHolding, kReleaseClean, kReleaseDirty, kDone };

  void run() override;
  // A grant that raced a cancel is released before the JS callback.
  void Settle() override;
  Napi::Value Extra(Napi::Env env) override;

  SharedMutexObject* owner_;
  Grant grant_;
  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kWaiting;
  State abandon_ = State::kWaiting;  // a Release() that came before the grant
};

}  // namespace interlock
