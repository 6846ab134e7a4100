#include "wait_object.h"

#include "addon_data.h"
#include "async_wait.h"

namespace interlock {

Napi::Function WaitObject::Init(Napi::Env env) {
  return DefineClass(env, "Wait", {InstanceMethod<&WaitObject::Cancel>("cancel")});
}

Napi::Object WaitObject::Wrap(Napi::Env env, AsyncWait* wait) {
  Napi::Object obj = AddonData::From(env)->wait_ctor.New({});
  Unwrap(obj)->wait_ = wait;
  return obj;
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
