#include "lock_file_object.h"

#include <string>

namespace interlock {

Napi::Function LockFileObject::Init(Napi::Env env) {
  return DefineClass(env, "LockFile",
                     {
                         InstanceMethod<&LockFileObject::Open>("open"),
                         InstanceMethod<&LockFileObject::Filesystem>("filesystem"),
                         InstanceMethod<&LockFileObject::Marks>("marks"),
                         InstanceMethod<&LockFileObject::LockSync>("lockSync"),
                         InstanceMethod<&LockFileObject::LockAsync>("lockAsync"),
                         InstanceMethod<&LockFileObject::Close>("close"),
                         StaticMethod<&LockFileObject::FilesystemOf>("filesystemOf"),
                         StaticMethod<&LockFileObject::TurnsOf>("turnsOf"),
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
LockFileObject::LockFileObject(const Napi::CallbackInfo& info) : LockObject(info) {
  std::string path;
  if (!ExpectArgs(info, 4) || !PathBytes(info[0], &path) || !info[1].IsNumber()) {
    ThrowType(info.Env(), "interlock binding: LockFile(path, mode, create, allowUnsafe)");
    return;
  }
  file_ = new LockFile(std::move(path), info[1].As<Napi::Number>().Int32Value(), Flag(info[2]), Flag(info[3]));
  last_grant_at_ = AddonData::From(info.Env())->last_grant_at;
  Register(info.Env(), info.This().As<Napi::Object>());
}

LockFileObject::~LockFileObject() {
  CloseNow(false);
  Unregister(Env());
  delete file_;
}

// Closing the fd drops its lock, so teardown and close() are the same.
void LockFileObject::CloseNow(bool teardown) {
  CloseWait(teardown);
  if (file_ != nullptr) file_->close();
}

Napi::Value LockFileObject::FastTryLock(const Napi::CallbackInfo& info) {
  LockFileObject* obj = FromSlot(info);
  if (obj == nullptr) return info.Env().Undefined();
  Grant grant;
  bool busy = false;
  Status s = obj->file_->try_lock(Request{Flag(info[1])}, &grant, &busy);
  if (!s.ok()) return ThrowStatus(info.Env(), s);
  return busy ? info.Env().Null() : GrantOut(info.Env(), grant, obj->last_grant_at_);
}

Napi::Value LockFileObject::FastUnlock(const Napi::CallbackInfo& info) {
  LockFileObject* obj = FromSlot(info);
  if (obj == nullptr) return info.Env().Undefined();
  return obj->Unlock(info);
}

// lockSync(shared, timeoutMs) -> grant: blocks this thread; timeoutMs < 0
// waits forever. undefined is no grant (an env being torn down can return
// without the error it could not throw).
Napi::Value LockFileObject::LockSync(const Napi::CallbackInfo& info) {
  if (!ExpectArgs(info, 2)) return info.Env().Undefined();
  Grant grant;
  Status s = LockOnJsThread(info.Env(), Request{Flag(info[0])}, info[1].As<Napi::Number>().DoubleValue(), &grant);
  if (!s.ok()) return ThrowStatus(info.Env(), s);
  return GrantValue(info.Env(), grant);
}

// lockAsync(shared, callback(errno, syscall, grant)) -> Wait. errno 0: granted.
Napi::Value LockFileObject::LockAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 2) || !info[1].IsFunction()) return ThrowType(env, "interlock binding: lockAsync(shared, cb)");
  return StartLock(env, Request{Flag(info[0])}, info[1], info.This());
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

// marks() -> null, or why grants carry no marks (token 0): the failure as
// errors.h makes it, with `region` and (refused for its owner) `ownerUid`.
Napi::Value LockFileObject::Marks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const FileMarks& marks = file_->marks();
  if (marks.status().ok()) return env.Null();
  Napi::Object out(env, StatusError(env, marks.status()));
  out.Set("region", Napi::String::New(env, "/dev/shm/" + marks.name()));
  out.Set("ownerUid", Napi::Number::New(env, marks.owner_uid()));
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

// LockFile.turnsOf(path) -> { handoff, handoffs }: the handoff turns in the
// marks of the file at `path` (zeroes when it has none), for FileLock.status().
Napi::Value LockFileObject::TurnsOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ExpectArgs(info, 1) || !PathBytes(info[0], &path)) return ThrowType(env, "interlock binding: turnsOf(path)");
  FileMarks::Turns turns;
  FileMarks::peek_turns(path, &turns);
  Napi::Object out = Napi::Object::New(env);
  out.Set("handoff", Napi::Boolean::New(env, turns.handoff));
  out.Set("handoffs", Napi::Number::New(env, static_cast<double>(turns.handoffs)));
  return out;
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
  CloseNow(false);
  return info.Env().Undefined();
}

}  // namespace interlock
