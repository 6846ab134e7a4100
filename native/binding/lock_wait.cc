#include "lock_wait.h"

namespace interlock {

Napi::Value GrantValue(Napi::Env env, const Grant& grant) {
  uint64_t low = (grant.token << 1) | (grant.owner_died ? 1 : 0);
  if (grant.token < (uint64_t{1} << 52)) return Napi::Number::New(env, static_cast<double>(low));
  uint64_t words[2] = {low, grant.token >> 63};
  return Napi::BigInt::New(env, 0, 2, words);
}

}  // namespace interlock
