// One lock as seen by one JS thread, for every kind: the primitive, at most
// one wait for it, the slot the hot-path functions reach it by, and closing
// at close() or teardown. Each kind's object instantiates LockObject with its
// primitive and adds only what is its own (who holds, a data buffer, info()).
#pragma once

#include <napi.h>

#include "../core/clock.h"
#include "addon_data.h"
#include "errors.h"
#include "lock_wait.h"
#include "sync_wait.h"
#include "wait_object.h"

namespace interlock {

// What the slot table and teardown know of every binding object.
class BindingObject {
 public:
  // close() (teardown=false) or the end of the environment: cancel the wait,
  // let go of every hold, close what the object opened.
  virtual void CloseNow(bool teardown) = 0;

 protected:
  ~BindingObject() = default;
  // Enters the slot table (and so teardown); sets `slot` on the JS object.
  void Register(Napi::Env env, Napi::Object self, const void* kind) {
    kind_ = kind;
    slot_ = AddonData::From(env)->objects.Add(this);
    self.Set("slot", Napi::Number::New(env, slot_));
  }
  void Unregister(Napi::Env env) {
    if (slot_ >= 0) AddonData::From(env)->objects.Remove(slot_);
    slot_ = -1;
  }

 private:
  template <typename, typename>
  friend class LockObject;
  const void* kind_ = nullptr;  // tells the kinds apart in the one slot table
  int slot_ = -1;
};

template <typename Derived, typename P>
class LockObject : public Napi::ObjectWrap<Derived>, public BindingObject {
 public:
  using Primitive = P;
  using Held = typename P::Held;
  using Wait = LockWait<Derived>;

  explicit LockObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {}

  // The hot-path functions take a slot: napi_unwrap is a private-property
  // lookup that costs more than the lock operation itself. Throws (and
  // returns null) when the slot holds no object of this kind. One call reads
  // the slot: napi_get_value_int32 itself refuses anything but a number
  // (a missing argument is undefined), without a napi_typeof first.
  static Derived* FromSlot(const Napi::CallbackInfo& info) {
    int32_t slot = -1;
    if (napi_get_value_int32(info.Env(), info[0], &slot) != napi_ok) slot = -1;
    BindingObject* obj = AddonData::From(info.Env())->objects.Get(slot);
    if (obj == nullptr || obj->kind_ != &kKind) {
      ThrowType(info.Env(), "interlock binding: no lock of this kind in that slot");
      return nullptr;
    }
    return static_cast<Derived*>(obj);
  }

  // JS thread, as a wait is delivered: a grant becomes this thread's hold.
  void WaitSettled(Wait* wait, bool granted) {
    if (wait_ != wait) return;
    wait_ = nullptr;
    if (granted) static_cast<Derived*>(this)->Hold(wait);
    wait->release();
  }

 protected:
  void Register(Napi::Env env, Napi::Object self) { BindingObject::Register(env, self, &kKind); }

  // Takes it now, or blocks this thread until `timeout_ms` (< 0: forever).
  Status LockOnJsThread(Napi::Env env, const Request& request, double timeout_ms, Held* out) {
    P& p = static_cast<Derived*>(this)->primitive();
    bool busy = false;
    Status s = p.try_lock(request, out, &busy);  // uncontended: no clock read
    if (s.ok() && busy) {
      // One start for every slice: the wait turns starving as a whole (handoff mode).
      Request waiting = request;
      waiting.since_ns = monotonic_ns();
      s = WaitOnJsThread(env, deadline_after_ms(timeout_ms),
                         [&](int64_t until) { return p.lock_timed(waiting, out, until); });
    }
    return s;
  }

  // lockAsync: starts the one wait; its callback gets (errno, syscall, grant).
  Napi::Value StartLock(Napi::Env env, const Request& request, const Napi::Value& callback, napi_value self) {
    if (wait_ != nullptr) return ThrowStatus(env, Status{-EBUSY, P::kCall});
    return StartWait(env, new Wait(env, callback, self, static_cast<Derived*>(this), request), &wait_);
  }

  // The wait's part of CloseNow: a grant it won or will win is let go.
  void CloseWait(bool teardown) {
    if (wait_ == nullptr) return;
    wait_->Close(!teardown);
    wait_->release();
    wait_ = nullptr;
  }

  Wait* wait_ = nullptr;  // in flight, retained

 private:
  static inline const char kKind = 0;
};

}  // namespace interlock
