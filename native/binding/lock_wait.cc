#include "lock_wait.h"

namespace interlock {

// Below this a grant (token * 2 + ownerDied) is an exact double.
constexpr uint64_t kExactTokens = uint64_t{1} << 52;

static uint64_t Encoded(const Grant& grant) { return (grant.token << 1) | (grant.owner_died ? 1 : 0); }

Napi::Value GrantValue(Napi::Env env, const Grant& grant) {
  uint64_t low = Encoded(grant);
  if (grant.token < kExactTokens) return Napi::Number::New(env, static_cast<double>(low));
  uint64_t words[2] = {low, grant.token >> 63};
  return Napi::BigInt::New(env, 0, 2, words);
}

Napi::Value GrantOut(Napi::Env env, const Grant& grant, double* at) {
  if (grant.token >= kExactTokens || at == nullptr) return GrantValue(env, grant);
  *at = static_cast<double>(Encoded(grant));
  return Napi::Boolean::New(env, true);
}

}  // namespace interlock
