// Native failures as JS sees them, one shape for sync and async calls: an
// Error with `errno` (negative, as Node's) for a system error or `kind` for
// one of interlock's own (ErrorKind), and `syscall`. Sync calls throw it,
// async waits pass it to their callback; lib/errors.ts fromNative() turns it
// into a LockError with the path.
#pragma once

#include <napi.h>

#include "../core/status.h"

namespace interlock {

// nullptr if the env can no longer make one (teardown).
napi_value StatusError(napi_env env, const Status& status);
Napi::Value ThrowStatus(Napi::Env env, const Status& status);
Napi::Value ThrowType(Napi::Env env, const char* message);

// Argument checks: the facade validates first, so these only guard against
// direct use of the binding. Return false with a TypeError pending.
bool ExpectArgs(const Napi::CallbackInfo& info, size_t count);

// A boolean argument, read without coercion: napi_coerce_to_bool refuses to
// run (and node-addon-api then aborts) while the env is being torn down.
bool Flag(const Napi::Value& value);

}  // namespace interlock
