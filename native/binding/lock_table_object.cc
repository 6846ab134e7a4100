#include "lock_table_object.h"

#include <algorithm>

#include "../core/wait.h"

namespace interlock {

// The watcher: a Wait that loops on a dedicated thread until cancelled, or
// until its client has had nothing in the table for a while (it lingers so a
// run of uncontended requests does not start a thread each time).
class TableWatch : public Wait {
 public:
  explicit TableWatch(LockTableObject* owner) : owner_(owner) {}

 private:
  static constexpr int64_t kLingerNs = 1000LL * 1000 * 1000;

  void run() override {
    LockTable& table = owner_->table();
    LockTable::Plan plan;
    int64_t idle_since = kNoDeadline;
    while (!cancel_requested()) {
      bool posted = false;
      Status st = table.watch(&plan, &posted);
      if (posted) owner_->Post();
      if (!st.ok()) return;  // the region is damaged; the next operation reports it
      int64_t deadline = kNoDeadline;
      if (plan.idle) {
        int64_t now = monotonic_ns();
        if (idle_since == kNoDeadline) idle_since = now;
        if (now - idle_since >= kLingerNs) {
          if (table.retire_watcher()) return;
          idle_since = now;
        }
        deadline = idle_since + kLingerNs;
      } else {
        idle_since = kNoDeadline;
      }
      table.sleep(plan, deadline);
    }
  }
  void on_cancel() override { owner_->table().ring(); }

  LockTableObject* owner_;
};

namespace {

void CallJs(napi_env env, napi_value callback, void*, void*) {
  if (env == nullptr || callback == nullptr) return;
  napi_value undefined;
  if (napi_get_undefined(env, &undefined) != napi_ok) return;
  napi_call_function(env, undefined, callback, 0, nullptr, nullptr);
}

}  // namespace

Napi::Function LockTableObject::Init(Napi::Env env) {
  return DefineClass(env, "LockTable",
                     {
                         InstanceMethod<&LockTableObject::Request>("request"),
                         InstanceMethod<&LockTableObject::Release>("release"),
                         InstanceMethod<&LockTableObject::Abort>("abort"),
                         InstanceMethod<&LockTableObject::Query>("query"),
                         InstanceMethod<&LockTableObject::TakeEvents>("takeEvents"),
                         InstanceMethod<&LockTableObject::KeepAlive>("keepAlive"),
                         InstanceMethod<&LockTableObject::Close>("close"),
                         InstanceMethod<&LockTableObject::LiveClients>("liveClients"),
                     });
}

LockTableObject::LockTableObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LockTableObject>(info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 4) || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsFunction()) {
    ThrowType(env, "interlock binding: LockTable(region, mode, threadId, onEvents)");
    return;
  }
  Status st = table_.open(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value(),
                          info[2].As<Napi::Number>().Int32Value());
  if (!st.ok()) {
    ThrowStatus(env, st);
    return;
  }
  napi_value name = Napi::String::New(env, "interlock:web-locks");
  if (napi_create_threadsafe_function(env, info[3], nullptr, name, 0, 1, nullptr, nullptr, nullptr, CallJs, &tsfn_) !=
      napi_ok) {
    table_.close();
    ThrowType(env, "interlock binding: cannot make the event channel");
    return;
  }
  napi_unref_threadsafe_function(env, tsfn_);
  Register(env, info.This().As<Napi::Object>(), nullptr);
}

LockTableObject::~LockTableObject() {
  CloseNow(false);
  Unregister(Env());
}

void LockTableObject::CloseNow(bool teardown) {
  if (watch_ != nullptr) {
    watch_->cancel();
    watch_->join();
    watch_->release();
    watch_ = nullptr;
  }
  table_.close();
  // At teardown the environment closes the channel itself.
  if (tsfn_ != nullptr && !teardown) napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
  tsfn_ = nullptr;
}

void LockTableObject::Post() {
  if (post_queued_.exchange(true)) return;
  if (tsfn_ == nullptr || napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking) != napi_ok) {
    post_queued_.store(false);
  }
}

bool LockTableObject::Usable(Napi::Env env) {
  if (table_.open()) return true;
  ThrowStatus(env, Status{-EBADF, "request"});
  return false;
}

void LockTableObject::EnsureWatcher() {
  if (!table_.claim_watcher()) return;
  if (watch_ != nullptr) watch_->release();  // a retired one; its thread has let go or soon will
  watch_ = new TableWatch(this);
  if (watch_->start() != 0) {
    watch_->release();
    watch_ = nullptr;
    table_.retire_watcher();
  }
}

int LockTableObject::EventsBit() { return table_.has_events() ? 2 : 0; }

// request(name, shared, ifAvailable, steal): -1 when ifAvailable found it
// taken, else id * 4 + granted + events bit.
Napi::Value LockTableObject::Request(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 4) || !info[0].IsString()) return ThrowType(env, "interlock binding: request(name, ...)");
  if (!Usable(env)) return env.Undefined();
  std::u16string name = info[0].As<Napi::String>().Utf16Value();
  LockTable::Outcome out;
  Status st =
      table_.request(name.data(), static_cast<uint32_t>(name.size()),
                     Flag(info[1]) ? LockMode::kShared : LockMode::kExclusive, Flag(info[2]), Flag(info[3]), &out);
  if (!st.ok()) return ThrowStatus(env, st);
  if (out.unavailable) return Napi::Number::New(env, -1 - EventsBit());
  EnsureWatcher();
  return Napi::Number::New(env, static_cast<double>(out.id) * 4 + (out.granted ? 1 : 0) + EventsBit());
}

Napi::Value LockTableObject::Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 1) || !info[0].IsNumber()) return ThrowType(env, "interlock binding: release(id)");
  Status st = table_.release(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
  if (!st.ok()) return ThrowStatus(env, st);
  return Napi::Number::New(env, EventsBit());
}

Napi::Value LockTableObject::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ExpectArgs(info, 1) || !info[0].IsNumber()) return ThrowType(env, "interlock binding: abort(id)");
  bool removed = false;
  Status st = table_.abort(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()), &removed);
  if (!st.ok()) return ThrowStatus(env, st);
  return Napi::Number::New(env, (removed ? 1 : 0) + EventsBit());
}

// [held, pending, names]: held and pending flat (name length, shared, pid,
// threadId, ...), names all their UTF-16 code units in a row. Code units, not
// a string: napi_create_string_utf16 turns a lone surrogate into U+FFFD, and
// names are compared as code units.
Napi::Value LockTableObject::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  std::vector<LockInfo> held, pending;
  Status st = table_.snapshot(&held, &pending);
  if (!st.ok()) return ThrowStatus(env, st);
  size_t units = 0;
  for (const auto* list : {&held, &pending})
    for (const LockInfo& l : *list) units += l.name.size();
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, units * sizeof(char16_t));
  auto* names = static_cast<char16_t*>(buffer.Data());
  auto flat = [env, &names](const std::vector<LockInfo>& list) {
    Napi::Array out = Napi::Array::New(env, list.size() * 4);
    uint32_t k = 0;
    for (const LockInfo& l : list) {
      std::copy(l.name.begin(), l.name.end(), names);
      names += l.name.size();
      out.Set(k++, Napi::Number::New(env, static_cast<double>(l.name.size())));
      out.Set(k++, Napi::Boolean::New(env, l.mode == LockMode::kShared));
      out.Set(k++, Napi::Number::New(env, l.pid));
      out.Set(k++, Napi::Number::New(env, l.thread));
    }
    return out;
  };
  Napi::Array both = Napi::Array::New(env, 3);
  both.Set(0u, flat(held));
  both.Set(1u, flat(pending));
  both.Set(2u, buffer);
  return both;
}

// Flat: id, granted (else lost), ...
Napi::Value LockTableObject::TakeEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  post_queued_.store(false);
  std::vector<LockEvent> events = table_.take_events();
  Napi::Array out = Napi::Array::New(env, events.size() * 2);
  uint32_t k = 0;
  for (const LockEvent& e : events) {
    out.Set(k++, Napi::Number::New(env, static_cast<double>(e.id)));
    out.Set(k++, Napi::Boolean::New(env, e.granted));
  }
  return out;
}

// A thread with pending requests stays alive for them, as with acquire().
Napi::Value LockTableObject::KeepAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool on = info.Length() > 0 && Flag(info[0]);
  if (tsfn_ != nullptr && on != kept_alive_) {
    if (on) {
      napi_ref_threadsafe_function(env, tsfn_);
    } else {
      napi_unref_threadsafe_function(env, tsfn_);
    }
    kept_alive_ = on;
  }
  return env.Undefined();
}

Napi::Value LockTableObject::Close(const Napi::CallbackInfo& info) {
  CloseNow(false);
  return info.Env().Undefined();
}

Napi::Value LockTableObject::LiveClients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  return Napi::Number::New(env, table_.live_clients());
}

}  // namespace interlock
