// One SharedMutex region as seen by one JS thread: the mapping, who holds
// the mutex for this thread (the JS thread itself, or a parked wait thread),
// and at most one wait. The facade keeps one per name per thread.
#pragma once

#include <napi.h>

#include <atomic>

#include "../core/shared_region.h"
#include "lock_object.h"

namespace interlock {

class SharedMutexObject : public LockObject<SharedMutexObject, SharedRegion> {
 public:
  static Napi::Function Init(Napi::Env env);
  // inspectRegion(name): the header of a region, read without locking.
  static Napi::Value Inspect(const Napi::CallbackInfo& info);
  // Hot path by slot: mutexTryLock(slot), mutexLockSync(slot, timeoutMs),
  // mutexUnlock(slot).
  static Napi::Value FastTryLock(const Napi::CallbackInfo& info);
  static Napi::Value FastLockSync(const Napi::CallbackInfo& info);
  static Napi::Value FastUnlock(const Napi::CallbackInfo& info);
  static Napi::Value GrantValue(Napi::Env env, const Grant& grant) { return interlock::GrantValue(env, grant); }

  explicit SharedMutexObject(const Napi::CallbackInfo& info);
  ~SharedMutexObject() override;

  SharedRegion& primitive() { return mapping_->region; }
  // A won wait's thread stays parked, holding the mutex for this thread.
  void Hold(Wait* wait);
  // Teardown (worker exit): let go of every hold, leaving the dirty flag set
  // so the next holder hears that this one did not finish cleanly, and unmap.
  void CloseNow(bool teardown) override;

 private:
  // Shared by this object and the finalizer of the data ArrayBuffer: the
  // memory stays mapped while either can still reach it.
  struct Mapping {
    SharedRegion region;
    std::atomic<int> refs{1};
    void Release() {
      if (refs.fetch_sub(1) == 1) delete this;
    }
  };
  enum class Holder { kNone, kJs, kParked };

  Napi::Value DoTryLock(Napi::Env env);
  Napi::Value DoLockSync(Napi::Env env, double timeout_ms);
  Napi::Value DoUnlock(Napi::Env env);
  Napi::Value LockAsync(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Data(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Granted(Napi::Env env, const Grant& grant, Holder holder);
  bool Usable(Napi::Env env);

  SharedRegion& region() { return mapping_->region; }

  Mapping* mapping_ = nullptr;
  Holder holder_ = Holder::kNone;
  Wait* parked_ = nullptr;                   // retained while it holds for us
  Napi::Reference<Napi::ArrayBuffer> data_;  // weak: to detach on close
};

}  // namespace interlock
