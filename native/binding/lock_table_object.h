// One Web Locks scope as seen by one JS thread: its client in the shared
// lock table, and the one watcher thread that tells JS about grants, steals
// and deaths while this thread has requests in the table.
#pragma once

#include <napi.h>

#include <atomic>

#include "../core/lock_table.h"
#include "lock_object.h"

namespace interlock {

class TableWatch;

class LockTableObject : public Napi::ObjectWrap<LockTableObject>, public BindingObject {
 public:
  static Napi::Function Init(Napi::Env env);

  // new LockTable(region, mode, threadId, onEvents)
  explicit LockTableObject(const Napi::CallbackInfo& info);
  ~LockTableObject() override;

  LockTable& table() { return table_; }
  // Watcher thread: wake JS to take the events (coalesced).
  void Post();
  // Teardown (worker exit) or close(): stop the watcher, leave the table.
  void CloseNow(bool teardown) override;

 private:
  Napi::Value Request(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value TakeEvents(const Napi::CallbackInfo& info);
  Napi::Value KeepAlive(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value LiveClients(const Napi::CallbackInfo& info);
  bool Usable(Napi::Env env);
  void EnsureWatcher();
  // Bit 1 of every answer: events are queued for JS to take now.
  int EventsBit();

  LockTable table_;
  TableWatch* watch_ = nullptr;
  napi_threadsafe_function tsfn_ = nullptr;
  std::atomic<bool> post_queued_{false};
  bool kept_alive_ = false;
};

}  // namespace interlock
