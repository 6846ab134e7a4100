#include "lock_file_object.h"

#include <string>

#include "addon_data.h"
#include "errors.h"
#include "file_wait.h"
#include "sync_wait.h"
#include "wait_object.h"

namespace interlock {

Napi::Function LockFileObject::Init(Napi::Env env) {
  return DefineClass(env, "LockFile",
                     {
                         InstanceMethod<&LockFileObject::Open>("open"),
                         InstanceMethod<&LockFileObject::Filesystem>("filesystem"),
                         InstanceMethod<&LockFileObject::LockSync>("lockSync"),
                         InstanceMethod<&LockFileObject::LockAsync>("lockAsync"),
                         InstanceMethod<&LockFileObject::Close>("close"),
                         StaticValue("UNSAFE_FILESYSTEM", Napi::Number::New(env, kUnsafeFilesystem)),
                         StaticMethod<&LockFileObject::FilesystemOf>("filesystemOf"),
                         StaticMethod<&LockFileObject::SetFsTypeForTesting>("setFsTypeForTesting"),
                     });
}

// A path as the kernel sees it: a Buffer's bytes untouched (they need not be
// UTF-8), a string as UTF-8.
static bool PathBytes(const Napi::Value& value, std::string* out) {
  if (value.IsString()) {
    *out = value.As<Napi::String>().Utf8Value();
    return true;
  }
  if (!value.IsBuffer()) return false;
  auto bytes = value.As<Napi::Buffer<char>>();
  out->assign(bytes.Data(), bytes.Length());
  return true;
}

// new LockFile(path, mode, create, allowUnsafe): opens nothing yet.
LockFileObject::LockFileObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LockFileObject>(info) {
  std::string path;
  if (!ExpectArgs(info, 4) || !PathBytes(info[0], &path) || !info[1].IsNumber()) {
    ThrowType(info.Env(), "interlock binding: LockFile(path, mode, create, allowUnsafe)");
    return;
  }
  file_ = new LockFile(std::move(path), info[1].As<Napi::Number>().Int32Value(), Flag(info[2]), Flag(info[3]));
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

// open() -> "dev:ino", the file's identity. Opens if not open yet.
Napi::Value LockFileObject::Open(const Napi::CallbackInfo& info) {
  if (!file_->is_open()) {
    Status s = file_->open();
    if (!s.ok()) return ThrowStatus(info.Env(), s);
  }
  std::string id = std::to_string(file_->dev()) + ":" + std::to_string(file_->ino());
  return Napi::String::New(info.Env(), id);
}

// { type, name }: an f_type, and its name if it is one where flock(2) may
// not exclude (else null).
static Napi::Value FilesystemValue(Napi::Env env, long f_type) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("type", Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(f_type))));
  const char* name = unsafe_filesystem_name(f_type);
  out.Set("name", name == nullptr ? env.Null() : Napi::String::New(env, name));
  return out;
}

// filesystem(): that of the last open.
Napi::Value LockFileObject::Filesystem(const Napi::CallbackInfo& info) {
  return FilesystemValue(info.Env(), file_->fs_type());
}

// LockFile.filesystemOf(fd): for an fd opened elsewhere (the CLI opens its
// lock file itself, as flock(1) does).
Napi::Value LockFileObject::FilesystemOf(const Napi::CallbackInfo& info) {
  if (!ExpectArgs(info, 1) || !info[0].IsNumber()) return info.Env().Undefined();
  long f_type = 0;
  Status s = filesystem_type(info[0].As<Napi::Number>().Int32Value(), &f_type);
  if (!s.ok()) return ThrowStatus(info.Env(), s);
  return FilesystemValue(info.Env(), f_type);
}

// Tests only (reached through the binding, not the package): every later
// open() sees this f_type; 0 restores the real one.
Napi::Value LockFileObject::SetFsTypeForTesting(const Napi::CallbackInfo& info) {
  if (!ExpectArgs(info, 1) || !info[0].IsNumber()) return info.Env().Undefined();
  set_fs_type_for_testing(static_cast<long>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
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
