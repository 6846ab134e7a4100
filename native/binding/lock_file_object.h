// One lock file as seen by one JS thread: the fd, and at most one wait for it.
// The facade keeps one per resolved path per thread, so a thread never opens
// more than one fd or runs more than one native waiter per lock.
#pragma once

#include <napi.h>

#include "../core/lock_file.h"

namespace interlock {

class FileWait;

class LockFileObject : public Napi::ObjectWrap<LockFileObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Hot path by slot (see SlotTable): fileTryLock(slot, shared) -> boolean,
  // fileUnlock(slot).
  static Napi::Value FastTryLock(const Napi::CallbackInfo& info);
  static Napi::Value FastUnlock(const Napi::CallbackInfo& info);
  static Napi::Value FilesystemOf(const Napi::CallbackInfo& info);
  static Napi::Value SetFsTypeForTesting(const Napi::CallbackInfo& info);

  explicit LockFileObject(const Napi::CallbackInfo& info);
  ~LockFileObject() override;

  // Teardown and close(): cancel the wait, let its thread go, close the fd.
  void CloseNow();
  LockFile& file() { return *file_; }
  // The wait has delivered: it no longer needs to be cancellable from here.
  void WaitSettled(FileWait* wait);

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Filesystem(const Napi::CallbackInfo& info);
  Napi::Value LockSync(const Napi::CallbackInfo& info);
  Napi::Value LockAsync(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  LockFile* file_ = nullptr;
  FileWait* wait_ = nullptr;  // the in-flight wait, retained
  int slot_ = -1;
};

}  // namespace interlock
