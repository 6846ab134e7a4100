// Per-environment state: one per JS thread (main or worker) that loads the
// addon, kept as instance data so several copies can live in one process.
#pragma once

#include <napi.h>

#include <unordered_set>

namespace interlock {

class AsyncWait;
class LockFileObject;
struct AddonData;

void DeliverWait(Napi::Env env, Napi::Function, AddonData* data, AsyncWait* wait);
using WaitChannel = Napi::TypedThreadSafeFunction<AddonData, AsyncWait, DeliverWait>;

struct AddonData {
  explicit AddonData(Napi::Env env);

  static AddonData* From(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

  // Keeps the event loop alive exactly while some wait is in flight.
  void WaitStarted(Napi::Env env);
  void WaitDelivered(Napi::Env env);

  // Worker exit or terminate(): cancel every wait this thread started, wait
  // for their threads to let go, close every lock file (dropping its locks).
  void Teardown();

  Napi::FunctionReference lock_file_ctor;
  Napi::FunctionReference wait_ctor;
  WaitChannel channel;
  int in_flight = 0;
  bool torn_down = false;
  std::unordered_set<AsyncWait*> waits;
  std::unordered_set<LockFileObject*> files;
};

}  // namespace interlock
