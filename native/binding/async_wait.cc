#include "async_wait.h"

#include "addon_data.h"
#include "errors.h"

namespace interlock {

// Raw Node-API throughout: a wait can be started in the very moment its
// worker is being terminated, when node-addon-api's checked wrappers would
// turn a refused call into a fatal error. A wait whose references could not
// be made is cancelled by the env cleanup hook like any other.
AsyncWait::AsyncWait(Napi::Env env, napi_value callback, napi_value owner) : data_(AddonData::From(env)) {
  napi_ref ref = nullptr;
  if (napi_create_reference(env, callback, 1, &ref) == napi_ok) callback_ = Napi::FunctionReference(env, ref);
  if (owner != nullptr && napi_create_reference(env, owner, 1, &ref) == napi_ok) {
    owner_ = Napi::ObjectReference(env, ref);
  }
}

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
  if (cb.IsEmpty()) {  // the wait began as its env was going away
    callback_.Reset();
    owner_.Reset();
    data->WaitDelivered(env);
    release();
    release();
    return;
  }
  callback_.Reset();
  owner_.Reset();
  data->WaitDelivered(env);
  napi_value error = result_.ok() ? nullptr : StatusError(env, result_);
  napi_value args[] = {error != nullptr ? error : static_cast<napi_value>(env.Null()), Extra(env)};
  // During worker termination JS can no longer run; that is normal here and
  // the env cleanup hook has released what this wait held.
  napi_call_function(env, env.Undefined(), cb, 2, args, nullptr);
  release();  // registry
  release();  // delivery
}

void AsyncWait::Orphan() {
  callback_.Reset();
  owner_.Reset();
  release();  // registry
}

}  // namespace interlock
