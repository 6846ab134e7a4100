#include "errors.h"

#include <cstring>

namespace interlock {

// Raw Node-API calls with their failures ignored: this also runs while an
// env is shutting down, when the checked wrappers would abort the process.
Napi::Value ThrowStatus(Napi::Env env, const Status& status) {
  const char* text = strerror(-status.error);
  napi_value message = nullptr, error = nullptr, errno_value = nullptr, syscall = nullptr;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message) != napi_ok) return env.Undefined();
  if (napi_create_error(env, nullptr, message, &error) != napi_ok) return env.Undefined();
  if (napi_create_int32(env, status.error, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  if (status.syscall != nullptr &&
      napi_create_string_utf8(env, status.syscall, NAPI_AUTO_LENGTH, &syscall) == napi_ok) {
    napi_set_named_property(env, error, "syscall", syscall);
  }
  napi_throw(env, error);
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

bool Flag(const Napi::Value& value) {
  bool out = false;
  napi_get_value_bool(value.Env(), value, &out);
  return out;
}

}  // namespace interlock
