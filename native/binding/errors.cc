#include "errors.h"

#include <cstring>

namespace interlock {

Napi::Value ThrowStatus(Napi::Env env, const Status& status) {
  Napi::Error err = Napi::Error::New(env, strerror(-status.error));
  err.Set("errno", Napi::Number::New(env, status.error));
  if (status.syscall != nullptr) err.Set("syscall", Napi::String::New(env, status.syscall));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ExpectArgs(const Napi::CallbackInfo& info, size_t count) {
  if (info.Length() >= count) return true;
  ThrowType(info.Env(), "interlock binding: missing arguments");
  return false;
}

}  // namespace interlock
