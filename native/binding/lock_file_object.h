// One lock file as seen by one JS thread: the fd, and at most one wait for it.
// The facade keeps one per resolved path per thread, so a thread never opens
// more than one fd or runs more than one native waiter per lock.
#pragma once

#include <napi.h>

#include "../core/lock_file.h"
#include "lock_object.h"

namespace interlock {

class LockFileObject : public LockObject<LockFileObject, LockFile> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Hot path by slot: fileTryLock(slot, shared) -> true (the grant is in
  // lastGrant), a grant too large for it (BigInt), or null when busy;
  // fileUnlock(slot).
  static Napi::Value FastTryLock(const Napi::CallbackInfo& info);
  static Napi::Value FastUnlock(const Napi::CallbackInfo& info);
  static Napi::Value FilesystemOf(const Napi::CallbackInfo& info);
  static Napi::Value TurnsOf(const Napi::CallbackInfo& info);
  static Napi::Value SetFsTypeForTesting(const Napi::CallbackInfo& info);
  static Napi::Value GrantValue(Napi::Env env, const Grant& grant) { return interlock::GrantValue(env, grant); }

  explicit LockFileObject(const Napi::CallbackInfo& info);
  ~LockFileObject() override;

  LockFile& primitive() { return *file_; }
  // A grant needs nothing kept here: the fd holds the lock.
  void Hold(Wait*) {}
  void CloseNow(bool teardown) override;

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Filesystem(const Napi::CallbackInfo& info);
  Napi::Value Marks(const Napi::CallbackInfo& info);
  Napi::Value LockSync(const Napi::CallbackInfo& info);
  Napi::Value LockAsync(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  LockFile* file_ = nullptr;
  double* last_grant_at_ = nullptr;  // AddonData::last_grant_at
};

}  // namespace interlock
