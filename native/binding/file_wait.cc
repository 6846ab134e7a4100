#include "file_wait.h"

#include "lock_file_object.h"

namespace interlock {

FileWait::FileWait(Napi::Env env, napi_value callback, LockFileObject* file, napi_value self, bool shared)
    : AsyncWait(env, callback, self), file_(file), shared_(shared) {}

void FileWait::run() { result_ = file_->file().lock(shared_, cancel_flag(), deadline()); }

void FileWait::Settle() {
  file_->WaitSettled(this);
  if (result_.ok() && cancel_requested()) {
    file_->file().unlock();
    result_ = Status{-ECANCELED, "flock"};
  }
}

}  // namespace interlock
