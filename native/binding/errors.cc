#include "errors.h"

#include <cstring>

namespace interlock {

// The names lib/errors.ts switches on.
static const char* KindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone:
      return "none";
    case ErrorKind::kIncompatible:
      return "incompatible";
    case ErrorKind::kDamaged:
      return "damaged";
    case ErrorKind::kOtherKind:
      return "otherKind";
    case ErrorKind::kOtherPidNs:
      return "otherPidNamespace";
    case ErrorKind::kForeignOwner:
      return "foreignOwner";
    case ErrorKind::kTooOpen:
      return "tooOpen";
    case ErrorKind::kBroken:
      return "broken";
    case ErrorKind::kGuardFull:
      return "guardFull";
    case ErrorKind::kUnsafeFilesystem:
      return "unsafeFilesystem";
    case ErrorKind::kTableFull:
      return "tableFull";
    case ErrorKind::kNotReady:
    case ErrorKind::kStale:
      break;
  }
  return "incompatible";  // internal to RegionFile::open; never leaves it
}

static void SetString(napi_env env, napi_value obj, const char* key, const char* value) {
  napi_value v = nullptr;
  if (value != nullptr && napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v) == napi_ok) {
    napi_set_named_property(env, obj, key, v);
  }
}

// Raw Node-API calls with their failures ignored: this also runs while an
// env is shutting down, when the checked wrappers would abort the process.
napi_value StatusError(napi_env env, const Status& status) {
  bool system = status.kind == ErrorKind::kNone;
  const char* text = system ? strerror(-status.error) : KindName(status.kind);
  napi_value message = nullptr, error = nullptr, errno_value = nullptr;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message) != napi_ok) return nullptr;
  if (napi_create_error(env, nullptr, message, &error) != napi_ok) return nullptr;
  if (!system) {
    SetString(env, error, "kind", KindName(status.kind));
  } else if (napi_create_int32(env, status.error, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  SetString(env, error, "syscall", status.syscall);
  return error;
}

Napi::Value ThrowStatus(Napi::Env env, const Status& status) {
  napi_value error = StatusError(env, status);
  if (error != nullptr) napi_throw(env, error);
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
