// Module init: classes, functions, and the env cleanup hook that makes
// worker teardown release every lock the worker held.
#include <napi.h>
#include <sys/file.h>

#include "../core/interrupter.h"
#include "addon_data.h"
#include "fd_wait.h"
#include "lock_file_object.h"
#include "lock_table_object.h"
#include "semaphore_object.h"
#include "shared_mutex_object.h"
#include "wait_object.h"

namespace interlock {
namespace {

void Cleanup(void* arg) { static_cast<AddonData*>(arg)->Teardown(); }

// lastGrant (AddonData::last_grant) by raw calls: a worker terminated as it
// loads the addon cannot make one (napi_create_arraybuffer refuses once JS
// cannot run), and node-addon-api would abort the process on the failure.
// Without it, tries return their grants as GrantValue makes them.
void MakeLastGrant(napi_env env, napi_value exports, AddonData* data) {
  void* at = nullptr;
  napi_value buffer = nullptr, array = nullptr;
  napi_ref ref = nullptr;
  if (napi_create_arraybuffer(env, sizeof(double), &at, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, 1, buffer, 0, &array) != napi_ok ||
      napi_set_named_property(env, exports, "lastGrant", array) != napi_ok ||
      napi_create_reference(env, buffer, 1, &ref) != napi_ok) {
    return;
  }
  data->last_grant = Napi::Reference<Napi::ArrayBuffer>(env, ref);
  data->last_grant_at = static_cast<double*>(at);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Interrupter::works();  // probe once, at load, on a JS thread
  if (Interrupter::signal_number() < 0) {
    Napi::Error::New(env, "interlock: no free real-time signal for interrupting waits").ThrowAsJavaScriptException();
    return exports;
  }
  auto* data = new AddonData(env);
  env.SetInstanceData<AddonData>(data);
  // Registered after the channel exists, so it runs before the channel's own
  // teardown (hooks run in reverse order) while threads can still post.
  napi_add_env_cleanup_hook(env, Cleanup, data);

  data->wait_ctor = Napi::Persistent(WaitObject::Init(env));
  MakeLastGrant(env, exports, data);
  exports.Set("LockFile", LockFileObject::Init(env));
  exports.Set("SharedMutex", SharedMutexObject::Init(env));
  exports.Set("LockTable", LockTableObject::Init(env));
  exports.Set("mutexTryLock", Napi::Function::New<SharedMutexObject::FastTryLock>(env, "mutexTryLock"));
  exports.Set("mutexLockSync", Napi::Function::New<SharedMutexObject::FastLockSync>(env, "mutexLockSync"));
  exports.Set("mutexUnlock", Napi::Function::New<SharedMutexObject::FastUnlock>(env, "mutexUnlock"));
  exports.Set("fileTryLock", Napi::Function::New<LockFileObject::FastTryLock>(env, "fileTryLock"));
  exports.Set("fileUnlock", Napi::Function::New<LockFileObject::FastUnlock>(env, "fileUnlock"));
  exports.Set("Semaphore", SemaphoreObject::Init(env));
  exports.Set("unlinkSemaphore", Napi::Function::New<SemaphoreObject::Unlink>(env, "unlinkSemaphore"));
  exports.Set("inspectRegion", Napi::Function::New<SharedMutexObject::Inspect>(env, "inspectRegion"));
  exports.Set("flockSync", Napi::Function::New<FdWait::FlockSync>(env, "flockSync"));
  exports.Set("flockAsync", Napi::Function::New<FdWait::FlockAsync>(env, "flockAsync"));
  // Errnos os.constants.errno lacks (robust mutexes), from the C headers.
  Napi::Object errnos = Napi::Object::New(env);
  errnos.Set("EOWNERDEAD", EOWNERDEAD);
  errnos.Set("ENOTRECOVERABLE", ENOTRECOVERABLE);
  exports.Set("errno", errnos);
  exports.Set("LOCK_SH", Napi::Number::New(env, LOCK_SH));
  exports.Set("LOCK_EX", Napi::Number::New(env, LOCK_EX));
  exports.Set("LOCK_UN", Napi::Number::New(env, LOCK_UN));
  exports.Set("LOCK_NB", Napi::Number::New(env, LOCK_NB));
  return exports;
}

}  // namespace
}  // namespace interlock

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return interlock::Init(env, exports); }

NODE_API_MODULE(interlock, InitAddon)
