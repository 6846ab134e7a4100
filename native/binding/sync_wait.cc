#include "sync_wait.h"

namespace interlock {

// napi_strict_equals goes through Node's NAPI_PREAMBLE, which fails once the
// environment may no longer call into JS (stopping, or torn down). It runs
// no JS and allocates nothing. A runtime that does not refuse it there keeps
// the old behaviour: the wait ends only when granted or timed out.
bool EnvStopping(napi_env env) {
  napi_value undefined = nullptr;
  bool same = false;
  if (napi_get_undefined(env, &undefined) != napi_ok) return true;
  return napi_strict_equals(env, undefined, undefined, &same) != napi_ok;
}

}  // namespace interlock
