#include "semaphore_object.h"

namespace interlock {

Napi::Function SemaphoreObject::Init(Napi::Env env) {
  return DefineClass(env, "Semaphore",
                     {
                         InstanceMethod<&SemaphoreObject::TryLock>("tryLock"),
                         InstanceMethod<&SemaphoreObject::LockSync>("lockSync"),
                         InstanceMethod<&SemaphoreObject::LockAsync>("lockAsync"),
                         InstanceMethod<&SemaphoreObject::Unlock>("unlock"),
                         InstanceMethod<&SemaphoreObject::Close>("close"),
                         InstanceMethod<&SemaphoreObject::Info>("info"),
                     });
}

// new Semaphore(name, permits, mode): maps the region and checks its set now,
// so a bad or incompatible region fails at construction.
SemaphoreObject::SemaphoreObject(const Napi::CallbackInfo& info) : LockObject(info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 3) || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    ThrowType(env, "interlock binding: Semaphore(name, permits, mode)");
    return;
  }
  double permits = info[1].As<Napi::Number>().DoubleValue();
  if (!(permits >= 1 && permits <= kMaxPermits)) {
    ThrowType(env, "interlock binding: bad permits");
    return;
  }
  Status s = sem_.open(info[0].As<Napi::String>().Utf8Value(), static_cast<uint32_t>(permits),
                       info[2].As<Napi::Number>().Int32Value());
  if (!s.ok()) {
    ThrowStatus(env, s);
    return;
  }
  Register(env, info.This().As<Napi::Object>());
}

SemaphoreObject::~SemaphoreObject() {
  CloseNow(false);
  Unregister(Env());
}

void SemaphoreObject::CloseNow(bool teardown) {
  CloseWait(teardown);
  for (const Permit& p : held_) sem_.unlock(p, !teardown);
  held_.clear();
  // No JS runs here again, and Deno runs no finalizers at worker end: unmap
  // and close the fd now rather than in the destructor.
  if (teardown) sem_.close();
}

uint32_t SemaphoreObject::HeldWeight() const {
  uint32_t sum = 0;
  for (const Permit& p : held_) sum += p.weight;
  return sum;
}

Napi::Value SemaphoreObject::GrantValue(Napi::Env env, const Permit& permit) {
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, static_cast<double>(permit.grant.token) * 2 + (permit.grant.owner_died ? 1 : 0)));
  out.Set(1u, Napi::Number::New(env, permit.record));
  return out;
}

bool SemaphoreObject::Usable(Napi::Env env) {
  if (sem_.mapped()) return true;
  ThrowStatus(env, Status{-EBADF, "mmap"});
  return false;
}

bool SemaphoreObject::Weight(const Napi::CallbackInfo& info, uint32_t* weight) {
  double w = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(w >= 1 && w <= sem_.permits())) {
    ThrowType(info.Env(), "interlock binding: bad weight");
    return false;
  }
  *weight = static_cast<uint32_t>(w);
  return Usable(info.Env());
}

// tryLock(weight) -> null when busy, else the grant.
Napi::Value SemaphoreObject::TryLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t weight;
  if (!Weight(info, &weight)) return env.Undefined();
  if (wait_ != nullptr) return env.Null();
  Permit permit;
  bool busy = false;
  Status s = sem_.try_lock(weight, &permit, &busy);
  if (!s.ok()) return ThrowStatus(env, s);
  if (busy) return env.Null();
  held_.push_back(permit);
  return GrantValue(env, permit);
}

// lockSync(weight, timeoutMs) -> grant; blocks this thread. EDEADLK when it
// could only be served by permits this very thread holds or waits for.
Napi::Value SemaphoreObject::LockSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t weight;
  if (!Weight(info, &weight) || !ExpectArgs(info, 2)) return env.Undefined();
  if (wait_ != nullptr || weight > sem_.permits() - HeldWeight()) return ThrowStatus(env, Status{-EDEADLK, "semop"});
  double timeout = info[1].As<Napi::Number>().DoubleValue();
  Permit permit;
  Status s = LockOnJsThread(env, Request{false, weight}, timeout, &permit);
  if (!s.ok()) return ThrowStatus(env, s);
  held_.push_back(permit);
  return GrantValue(env, permit);
}

// lockAsync(weight, callback(errno, syscall, grant)) -> Wait.
Napi::Value SemaphoreObject::LockAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t weight;
  if (!Weight(info, &weight)) return env.Undefined();
  if (!ExpectArgs(info, 2) || !info[1].IsFunction()) return ThrowType(env, "interlock binding: lockAsync(weight, cb)");
  return StartLock(env, Request{false, weight}, info[1], info.This());
}

// unlock(record): gives back the permits of that grant.
Napi::Value SemaphoreObject::Unlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int record = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  for (size_t i = 0; i < held_.size(); ++i) {
    if (held_[i].record != record) continue;
    Permit p = held_[i];
    held_[i] = held_.back();
    held_.pop_back();
    Status s = sem_.unlock(p, true);
    if (!s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }
  return env.Undefined();  // not held (closed meanwhile): nothing to give back
}

Napi::Value SemaphoreObject::Close(const Napi::CallbackInfo& info) {
  CloseNow(false);
  sem_.close();
  return info.Env().Undefined();
}

// info() -> { permits, available, waiting, handoffs, holders: [{ pid, tid, weight, since }] }
Napi::Value SemaphoreObject::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  SemaphoreInfo si;
  Status s = sem_.info(&si);
  if (!s.ok()) return ThrowStatus(env, s);
  Napi::Object out = Napi::Object::New(env);
  out.Set("permits", Napi::Number::New(env, si.permits));
  out.Set("available", Napi::Number::New(env, si.available));
  out.Set("waiting", Napi::Number::New(env, si.waiting));
  out.Set("handoffs", Napi::Number::New(env, static_cast<double>(si.handoffs)));
  Napi::Array holders = Napi::Array::New(env, si.holders.size());
  for (size_t i = 0; i < si.holders.size(); ++i) {
    Napi::Object h = Napi::Object::New(env);
    h.Set("pid", Napi::Number::New(env, si.holders[i].pid));
    h.Set("tid", Napi::Number::New(env, si.holders[i].tid));
    h.Set("weight", Napi::Number::New(env, si.holders[i].weight));
    h.Set("since", Napi::Number::New(env, static_cast<double>(si.holders[i].since_ms)));
    holders.Set(static_cast<uint32_t>(i), h);
  }
  out.Set("holders", holders);
  return out;
}

Napi::Value SemaphoreObject::Unlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 1) || !info[0].IsString()) return ThrowType(env, "interlock binding: unlinkSemaphore(name)");
  Status s = Semaphore::unlink(info[0].As<Napi::String>().Utf8Value());
  if (!s.ok()) return ThrowStatus(env, s);
  return env.Undefined();
}

}  // namespace interlock
