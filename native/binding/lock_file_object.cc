#include "lock_file_object.h"

#include "addon_data.h"
#include "errors.h"
#include "file_wait.h"
#include "sync_wait.h"
#include "wait_object.h"

namespace interlock {

Napi::Function LockFileObject::Init(Napi::Env env) {
  return DefineClass(env, "LockFile",
                     {
                         InstanceMethod<&LockFileObject::LockSync>("lockSync"),
                         InstanceMethod<&LockFileObject::LockAsync>("lockAsync"),
                         InstanceMethod<&LockFileObject::Close>("close"),
                     });
}

// new LockFile(path, mode, create): opens nothing yet; the first lock does.
LockFileObject::LockFileObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LockFileObject>(info) {
  if (!ExpectArgs(info, 3) || !info[0].IsString() || !info[1].IsNumber()) {
    ThrowType(info.Env(), "interlock binding: LockFile(path, mode, create)");
    return;
  }
  file_ = new LockFile(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value(), Flag(info[2]));
  slot_ = AddonData::From(info.Env())->files.Add(this);
  info.This().As<Napi::Object>().Set("slot", Napi::Number::New(info.Env(), slot_));
}

LockFileObject::~LockFileObject() {
  CloseNow();
  if (slot_ >= 0) AddonData::From(Env())->files.Remove(slot_);
  delete file_;
}

void LockFileObject::CloseNow() {
  if (wait_ != nullptr) {
    wait_->cancel();
    wait_->join();
    wait_->release();
    wait_ = nullptr;
  }
  if (file_ != nullptr) file_->close();
}

void LockFileObject::WaitSettled(FileWait* wait) {
  if (wait_ != wait) return;
  wait_->release();
  wait_ = nullptr;
}

static Napi::Value TryLockFile(Napi::Env env, LockFile* file, bool shared) {
  bool busy = false;
  Status s = file->try_lock(shared, &busy);
  if (!s.ok()) return ThrowStatus(env, s);
  return Napi::Boolean::New(env, !busy);
}

static LockFileObject* FromSlot(const Napi::CallbackInfo& info) {
  LockFileObject* obj = AddonData::From(info.Env())->files.Get(info[0].As<Napi::Number>().Int32Value());
  if (obj == nullptr) ThrowType(info.Env(), "interlock binding: no lock file in that slot");
  return obj;
}

Napi::Value LockFileObject::FastTryLock(const Napi::CallbackInfo& info) {
  LockFileObject* obj = FromSlot(info);
  if (obj == nullptr) return info.Env().Undefined();
  return TryLockFile(info.Env(), obj->file_, Flag(info[1]));
}

Napi::Value LockFileObject::FastUnlock(const Napi::CallbackInfo& info) {
  LockFileObject* obj = FromSlot(info);
  if (obj == nullptr) return info.Env().Undefined();
  return obj->Unlock(info);
}

// lockSync(shared, timeoutMs) -> true: blocks this thread; timeoutMs < 0
// waits forever. Anything but true is no grant (an env being torn down can
// return without the error it could not throw).
Napi::Value LockFileObject::LockSync(const Napi::CallbackInfo& info) {
  if (!ExpectArgs(info, 2)) return info.Env().Undefined();
  bool shared = Flag(info[0]);
  double timeout = info[1].As<Napi::Number>().DoubleValue();
  Status s = WaitOnJsThread(info.Env(), deadline_after_ms(timeout),
                            [&](int64_t until) { return file_->lock_timed(shared, until); });
  if (!s.ok()) return ThrowStatus(info.Env(), s);
  return Napi::Boolean::New(info.Env(), true);
}

// lockAsync(shared, callback(errno, syscall)) -> Wait. errno 0: granted.
Napi::Value LockFileObject::LockAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 2) || !info[1].IsFunction()) return ThrowType(env, "interlock binding: lockAsync(shared, cb)");
  if (wait_ != nullptr) return ThrowStatus(env, Status{-EBUSY, "flock"});
  bool shared = false;
  napi_get_value_bool(env, info[0], &shared);
  auto* wait = new FileWait(env, info[1], this, info.This(), shared);
  int err = wait->Begin(env);
  if (err != 0) {
    wait->Orphan();
    return ThrowStatus(env, Status{err, "pthread_create"});
  }
  wait->retain();
  wait_ = wait;
  return WaitObject::Wrap(env, wait);
}

Napi::Value LockFileObject::Unlock(const Napi::CallbackInfo& info) {
  Status s = file_->unlock();
  if (!s.ok()) return ThrowStatus(info.Env(), s);
  return info.Env().Undefined();
}

Napi::Value LockFileObject::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

}  // namespace interlock
