// Waits for a lock file on a dedicated thread.
#pragma once

#include "async_wait.h"

namespace interlock {

class LockFileObject;

class FileWait : public AsyncWait {
 public:
  FileWait(Napi::Env env, napi_value callback, LockFileObject* file, napi_value self, bool shared);

 private:
  void run() override;
  // A grant that raced a cancel is unlocked here, before the JS callback
  // runs, so a rejected acquire never leaves the lock held.
  void Settle() override;

  LockFileObject* file_;
  bool shared_;
};

}  // namespace interlock
