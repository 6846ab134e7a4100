// One SharedMutex region as seen by one JS thread: the mapping, who holds
// the mutex for this thread (the JS thread itself, or a parked wait thread),
// and at most one wait. The facade keeps one per name per thread.
#pragma once

#include <napi.h>

#include <atomic>

#include "../core/shared_region.h"

namespace interlock {

class MutexWait;

class SharedMutexObject : public Napi::ObjectWrap<SharedMutexObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  // inspectRegion(name): the header of a region, read without locking.
  static Napi::Value Inspect(const Napi::CallbackInfo& info);
  // Hot path by slot (see SlotTable): mutexTryLock(slot), mutexLockSync(slot,
  // timeoutMs), mutexUnlock(slot).
  static Napi::Value FastTryLock(const Napi::CallbackInfo& info);
  static Napi::Value FastLockSync(const Napi::CallbackInfo& info);
  static Napi::Value FastUnlock(const Napi::CallbackInfo& info);
  // A grant as JS sees it: token * 2 + ownerDied, a Number or past 2^52 a BigInt.
  static Napi::Value GrantValue(Napi::Env env, const Grant& grant);
  static Napi::Object RegionCodes(Napi::Env env);

  explicit SharedMutexObject(const Napi::CallbackInfo& info);
  ~SharedMutexObject() override;

  SharedRegion& region() { return mapping_->region; }
  void WaitSettled(MutexWait* wait, bool granted);
  // Teardown (worker exit): let go of every hold, leaving the dirty flag set
  // so the next holder hears that this one did not finish cleanly, and unmap.
  void CloseNow(bool teardown);

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

  Mapping* mapping_ = nullptr;
  Holder holder_ = Holder::kNone;
  MutexWait* parked_ = nullptr;              // retained while it holds for us
  MutexWait* wait_ = nullptr;                // in flight, retained
  Napi::Reference<Napi::ArrayBuffer> data_;  // weak: to detach on close
  int slot_ = -1;
};

}  // namespace interlock
