#include "wait_object.h"

#include "addon_data.h"
#include "async_wait.h"

namespace interlock {

Napi::Function WaitObject::Init(Napi::Env env) {
  return DefineClass(env, "Wait", {InstanceMethod<&WaitObject::Cancel>("cancel")});
}

Napi::Value WaitObject::Wrap(Napi::Env env, AsyncWait* wait) {
  // Raw call: while a worker or process is exiting, JS calls can still reach
  // us but constructors can no longer run. That is not an error worth a
  // fatal abort (node-addon-api's checked path): the env cleanup hook will
  // cancel the wait, so drop the reference a wrapper would have owned.
  napi_value ctor = AddonData::From(env)->wait_ctor.Value();
  napi_value obj = nullptr;
  void* native = nullptr;
  // During teardown the instance may come back without its native half
  // (the constructor never ran): check the unwrap as well.
  if (napi_new_instance(env, ctor, 0, nullptr, &obj) != napi_ok || obj == nullptr ||
      napi_unwrap(env, obj, &native) != napi_ok || native == nullptr) {
    wait->release();
    return env.Undefined();
  }
  static_cast<WaitObject*>(native)->wait_ = wait;
  return Napi::Value(env, obj);
}

WaitObject::WaitObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WaitObject>(info) {}

WaitObject::~WaitObject() {
  if (wait_ != nullptr) wait_->release();
}

Napi::Value WaitObject::Cancel(const Napi::CallbackInfo& info) {
  if (wait_ != nullptr) wait_->cancel();
  return info.Env().Undefined();
}

}  // namespace interlock
