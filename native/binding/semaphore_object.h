// One Semaphore as seen by one JS thread: the mapping, the permits this
// thread holds (kept here, not trusted from the shared region), and at most
// one wait. The facade keeps one per name per thread.
//
// Unlike a pthread mutex, permits taken with SEM_UNDO belong to the process,
// not the thread: a wait thread takes them and the JS thread gives them back,
// so no thread parks while a permit is held. Worker teardown goes through an
// env cleanup hook of this object's own (the pattern the other kinds could
// move to instead of AddonData's per-kind tables).
#pragma once

#include <napi.h>

#include <vector>

#include "../core/semaphore.h"

namespace interlock {

class SemaphoreWait;

class SemaphoreObject : public Napi::ObjectWrap<SemaphoreObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  // unlinkSemaphore(name)
  static Napi::Value Unlink(const Napi::CallbackInfo& info);

  explicit SemaphoreObject(const Napi::CallbackInfo& info);
  ~SemaphoreObject() override;

  Semaphore& semaphore() { return sem_; }
  // JS thread, as a wait is delivered: a granted permit joins held_.
  void WaitSettled(SemaphoreWait* wait, const Permit* permit);
  // Encodes a grant for the facade: [token * 2 + ownerDied, record].
  static Napi::Value Granted(Napi::Env env, const Permit& permit);

 private:
  static void OnTeardown(void* self);
  // Cancels the wait, gives back every permit; teardown marks the records
  // abandoned so the next holders hear ownerDied.
  void CloseNow(bool teardown);
  uint32_t HeldWeight() const;

  Napi::Value TryLock(const Napi::CallbackInfo& info);
  Napi::Value LockSync(const Napi::CallbackInfo& info);
  Napi::Value LockAsync(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  bool Usable(Napi::Env env);
  bool Weight(const Napi::CallbackInfo& info, uint32_t* weight);

  Semaphore sem_;
  std::vector<Permit> held_;
  SemaphoreWait* wait_ = nullptr;  // in flight, retained
  napi_env env_ = nullptr;         // set while the cleanup hook is registered
};

}  // namespace interlock
