#include "async_wait.h"

#include "addon_data.h"

namespace interlock {

AsyncWait::AsyncWait(Napi::Env env, Napi::Function callback, Napi::Object owner)
    : data_(AddonData::From(env)),
      callback_(Napi::Persistent(callback)),
      owner_(owner.IsEmpty() ? Napi::ObjectReference() : Napi::Persistent(owner)) {}

int AsyncWait::Begin(Napi::Env env, int64_t deadline_ns) {
  int err = start(deadline_ns);
  if (err != 0) return err;
  data_->waits.insert(this);
  retain();  // held by the registry until delivered or torn down
  data_->WaitStarted(env);
  return 0;
}

void AsyncWait::Post() {
  if (posted_) return;
  posted_ = true;
  retain();  // the delivery's reference
  if (data_->channel.NonBlockingCall(this) != napi_ok) release();
}

void AsyncWait::Deliver(Napi::Env env, AddonData* data) {
  if (data->waits.erase(this) == 0) {  // torn down meanwhile
    release();
    return;
  }
  Settle();
  Napi::HandleScope scope(env);
  Napi::Function cb = callback_.Value();
  callback_.Reset();
  owner_.Reset();
  data->WaitDelivered(env);
  Napi::Value syscall = result_.syscall != nullptr ? Napi::String::New(env, result_.syscall) : env.Undefined();
  napi_value args[] = {Napi::Number::New(env, result_.error), syscall, Extra(env)};
  // During worker termination JS can no longer run; that is normal here and
  // the env cleanup hook has released what this wait held.
  napi_call_function(env, env.Undefined(), cb, 3, args, nullptr);
  release();  // registry
  release();  // delivery
}

void AsyncWait::Orphan() {
  callback_.Reset();
  owner_.Reset();
  release();  // registry
}

}  // namespace interlock
