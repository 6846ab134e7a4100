#include "shared_mutex_object.h"

#include <cstring>

namespace interlock {

Napi::Function SharedMutexObject::Init(Napi::Env env) {
  return DefineClass(env, "SharedMutex",
                     {
                         InstanceMethod<&SharedMutexObject::LockAsync>("lockAsync"),
                         InstanceMethod<&SharedMutexObject::Close>("close"),
                         InstanceMethod<&SharedMutexObject::Data>("data"),
                         InstanceMethod<&SharedMutexObject::Info>("info"),
                     });
}

// A refusal to open, with the file's owner and mode when they are the cause.
static void ThrowOpenError(Napi::Env env, const Status& s, const RegionFile& file) {
  napi_value error = StatusError(env, s);
  if (error == nullptr) return;
  if (s.kind == ErrorKind::kForeignOwner || s.kind == ErrorKind::kTooOpen) {
    Napi::Object err(env, error);
    err.Set("ownerUid", Napi::Number::New(env, file.file_uid()));
    err.Set("fileMode", Napi::Number::New(env, file.file_mode()));
  }
  napi_throw(env, error);
}

// new SharedMutex(name, dataSize, mode, allowForeignOwner): maps the region
// now, so a bad, incompatible or foreign region fails at construction.
SharedMutexObject::SharedMutexObject(const Napi::CallbackInfo& info) : LockObject(info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 4) || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsBoolean()) {
    ThrowType(env, "interlock binding: SharedMutex(name, dataSize, mode, allowForeignOwner)");
    return;
  }
  double size = info[1].As<Napi::Number>().DoubleValue();
  if (!(size >= 0 && size <= 9007199254740991.0)) {
    ThrowType(env, "interlock binding: bad dataSize");
    return;
  }
  mapping_ = new Mapping();
  Status s = mapping_->region.open(info[0].As<Napi::String>().Utf8Value(), static_cast<uint64_t>(size),
                                   info[2].As<Napi::Number>().Int32Value(), Flag(info[3]));
  if (!s.ok()) {
    ThrowOpenError(env, s, mapping_->region.file());
    mapping_->Release();
    mapping_ = nullptr;
    return;
  }
  Register(env, info.This().As<Napi::Object>());
}

SharedMutexObject::~SharedMutexObject() {
  CloseNow(false);
  Unregister(Env());
  if (mapping_ != nullptr) mapping_->Release();
}

void SharedMutexObject::CloseNow(bool teardown) {
  CloseWait(teardown);
  if (holder_ == Holder::kParked) {
    parked_->Release(!teardown);
    parked_->release();
    parked_ = nullptr;
  } else if (holder_ == Holder::kJs) {
    region().unlock(!teardown);
  }
  holder_ = Holder::kNone;
  // No JS runs in this environment again, and a runtime may never run the
  // finalizers that unmap later (Deno does not at worker end): unmap and
  // close the fd now. A `data` ArrayBuffer is left pointing nowhere, unread.
  if (teardown && mapping_ != nullptr) mapping_->region.unmap();
}

bool SharedMutexObject::Usable(Napi::Env env) {
  if (mapping_ != nullptr && mapping_->region.mapped()) return true;
  ThrowStatus(env, Status{-EBADF, "mmap"});
  return false;
}

void SharedMutexObject::Hold(Wait* wait) {
  wait->retain();
  holder_ = Holder::kParked;
  parked_ = wait;
}

Napi::Value SharedMutexObject::Granted(Napi::Env env, const Grant& grant, Holder holder) {
  holder_ = holder;
  return GrantValue(env, grant);
}

Napi::Value SharedMutexObject::FastTryLock(const Napi::CallbackInfo& info) {
  SharedMutexObject* obj = FromSlot(info);
  return obj == nullptr ? info.Env().Undefined() : obj->DoTryLock(info.Env());
}

Napi::Value SharedMutexObject::FastLockSync(const Napi::CallbackInfo& info) {
  SharedMutexObject* obj = FromSlot(info);
  return obj == nullptr ? info.Env().Undefined()
                        : obj->DoLockSync(info.Env(), info[1].As<Napi::Number>().DoubleValue());
}

Napi::Value SharedMutexObject::FastUnlock(const Napi::CallbackInfo& info) {
  SharedMutexObject* obj = FromSlot(info);
  return obj == nullptr ? info.Env().Undefined() : obj->DoUnlock(info.Env());
}

// tryLock() -> 0 when busy, else the encoded grant.
Napi::Value SharedMutexObject::DoTryLock(Napi::Env env) {
  if (!Usable(env)) return env.Undefined();
  if (holder_ != Holder::kNone || wait_ != nullptr) return Napi::Number::New(env, 0);
  Grant grant;
  bool busy = false;
  Status s = region().try_lock(&grant, &busy);
  if (!s.ok()) return ThrowStatus(env, s);
  if (busy) return Napi::Number::New(env, 0);
  return Granted(env, grant, Holder::kJs);
}

// lockSync(timeoutMs) -> encoded grant; blocks this thread.
Napi::Value SharedMutexObject::DoLockSync(Napi::Env env, double timeout) {
  if (!Usable(env)) return env.Undefined();
  if (holder_ != Holder::kNone || wait_ != nullptr) return ThrowStatus(env, Status{-EDEADLK, "pthread_mutex_lock"});
  Grant grant;
  Status s = LockOnJsThread(env, Request{}, timeout, &grant);
  if (!s.ok()) return ThrowStatus(env, s);
  return Granted(env, grant, Holder::kJs);
}

// lockAsync(callback(errno, syscall, grant)) -> Wait.
Napi::Value SharedMutexObject::LockAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 1) || !info[0].IsFunction()) return ThrowType(env, "interlock binding: lockAsync(cb)");
  if (!Usable(env)) return env.Undefined();
  if (holder_ != Holder::kNone) return ThrowStatus(env, Status{-EBUSY, "pthread_mutex_lock"});
  return StartLock(env, Request{}, info[0], info.This());
}

Napi::Value SharedMutexObject::DoUnlock(Napi::Env env) {
  if (holder_ == Holder::kJs) {
    holder_ = Holder::kNone;
    Status s = region().unlock(true);
    if (!s.ok()) return ThrowStatus(env, s);
  } else if (holder_ == Holder::kParked) {
    holder_ = Holder::kNone;
    parked_->Release(true);
    parked_->release();
    parked_ = nullptr;
    // The parked thread's unlock saw the loss (and marked the region broken).
    if (region().lost()) return ThrowStatus(env, Status{ErrorKind::kDamaged, "pthread_mutex_unlock"});
  }
  return env.Undefined();
}

// close(): releases holds, then unmaps at once. The data ArrayBuffer is
// detached first, so a stale `m.data` reads as empty instead of touching
// unmapped memory.
Napi::Value SharedMutexObject::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CloseNow(false);
  bool can_unmap = true;
  if (!data_.IsEmpty()) {
    Napi::ArrayBuffer ab = data_.Value();
    if (!ab.IsEmpty() && napi_detach_arraybuffer(env, ab) != napi_ok) can_unmap = false;
    data_.Reset();
  }
  if (mapping_ != nullptr && can_unmap) mapping_->region.unmap();
  return env.Undefined();
}

// data() -> ArrayBuffer over the region's user bytes (made once).
Napi::Value SharedMutexObject::Data(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  if (!data_.IsEmpty()) {
    Napi::ArrayBuffer existing = data_.Value();
    if (!existing.IsEmpty()) return existing;
  }
  if (region().data_size() == 0) return Napi::ArrayBuffer::New(env, 0);
  napi_value ab;
  mapping_->refs.fetch_add(1);
  napi_status status = napi_create_external_arraybuffer(
      env, region().data(), region().data_size(),
      [](napi_env, void*, void* hint) { static_cast<Mapping*>(hint)->Release(); }, mapping_, &ab);
  if (status != napi_ok) {
    mapping_->Release();
    Napi::Error err = Napi::Error::New(
        env,
        "interlock: this runtime forbids external ArrayBuffers (V8 sandbox, e.g. Electron), so SharedMutex "
        "data cannot be exposed; the mutex itself still works");
    err.Set("code", Napi::String::New(env, "ERR_EXTERNAL_BUFFERS_FORBIDDEN"));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  data_ = Napi::Weak(Napi::ArrayBuffer(env, ab));
  return Napi::Value(env, ab);
}

static Napi::Object Snapshot(Napi::Env env, const SharedRegion::Snapshot& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dataSize", Napi::Number::New(env, static_cast<double>(s.data_size)));
  o.Set("token", Napi::BigInt::New(env, s.token));
  o.Set("ready", Napi::Boolean::New(env, s.ready));
  o.Set("dirty", Napi::Boolean::New(env, s.dirty));
  // Lost writes: every use is refused, so `dirty`/ownerDied promise nothing.
  o.Set("broken", Napi::Boolean::New(env, s.broken));
  o.Set("samePidNamespace", Napi::Boolean::New(env, s.same_pid_ns));
  o.Set("holderPid", Napi::Number::New(env, s.holder_pid));
  o.Set("holderTid", Napi::Number::New(env, s.holder_tid));
  o.Set("acquiredAt", Napi::Number::New(env, static_cast<double>(s.acquired_at_ms)));
  o.Set("handoff", Napi::Boolean::New(env, s.handoff));
  o.Set("handoffs", Napi::Number::New(env, static_cast<double>(s.handoffs)));
  o.Set("abi", Napi::String::New(env, s.abi));
  return o;
}

Napi::Value SharedMutexObject::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  SharedRegion::Snapshot s = region().snapshot();
  return Snapshot(env, s);
}

Napi::Value SharedMutexObject::Inspect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 1) || !info[0].IsString()) return ThrowType(env, "interlock binding: inspectRegion(name)");
  SharedRegion::Snapshot s{};
  Status st = SharedRegion::peek(info[0].As<Napi::String>().Utf8Value(), &s);
  if (!st.ok()) return ThrowStatus(env, st);
  return Snapshot(env, s);
}

}  // namespace interlock
