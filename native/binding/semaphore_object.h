// One Semaphore as seen by one JS thread: the mapping, the permits this
// thread holds (kept here, not trusted from the shared region), and at most
// one wait. The facade keeps one per name per thread.
//
// Unlike a pthread mutex, permits taken with SEM_UNDO belong to the process,
// not the thread: a wait thread takes them and the JS thread gives them back,
// so no thread parks while a permit is held.
#pragma once

#include <napi.h>

#include <vector>

#include "../core/semaphore.h"
#include "lock_object.h"

namespace interlock {

class SemaphoreObject : public LockObject<SemaphoreObject, Semaphore> {
 public:
  static Napi::Function Init(Napi::Env env);
  // unlinkSemaphore(name)
  static Napi::Value Unlink(const Napi::CallbackInfo& info);

  explicit SemaphoreObject(const Napi::CallbackInfo& info);
  ~SemaphoreObject() override;

  Semaphore& primitive() { return sem_; }
  // A won wait's permits join held_.
  void Hold(Wait* wait) { held_.push_back(wait->held()); }
  // Encodes a grant for the facade: [token * 2 + ownerDied, record].
  static Napi::Value GrantValue(Napi::Env env, const Permit& permit);
  // Cancels the wait, gives back every permit; teardown marks the records
  // abandoned so the next holders hear ownerDied, and unmaps.
  void CloseNow(bool teardown) override;

 private:
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
};

}  // namespace interlock
