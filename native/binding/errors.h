// Throwing from the binding. System errors carry errno (negative, as Node
// does) and syscall; the facade turns them into LockError with the path.
#pragma once

#include <napi.h>

#include "../core/status.h"

namespace interlock {

Napi::Value ThrowStatus(Napi::Env env, const Status& status);
Napi::Value ThrowType(Napi::Env env, const char* message);

// Argument checks: the facade validates first, so these only guard against
// direct use of the binding. Return false with a TypeError pending.
bool ExpectArgs(const Napi::CallbackInfo& info, size_t count);

// A boolean argument, read without coercion: napi_coerce_to_bool refuses to
// run (and node-addon-api then aborts) while the env is being torn down.
bool Flag(const Napi::Value& value);

}  // namespace interlock
