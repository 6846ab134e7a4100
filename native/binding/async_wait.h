// A core Wait whose result is handed back to a JS callback on the thread
// that started it, through the environment's thread-safe channel.
#pragma once

#include <napi.h>

#include "../core/status.h"
#include "../core/wait.h"

namespace interlock {

struct AddonData;

class AsyncWait : public Wait {
 public:
  // `owner` is kept alive until delivery, since run() uses what it owns.
  AsyncWait(Napi::Env env, napi_value callback, napi_value owner);

  // Starts the thread and registers with the environment. 0 or -errno.
  int Begin(Napi::Env env, int64_t deadline_ns = kNoDeadline);
  // On the JS thread: calls back with (error or null, grant) and lets go.
  void Deliver(Napi::Env env, AddonData* data);
  // Teardown: forget the JS side while the environment is still valid.
  void Orphan();

 protected:
  // What run() found; the callback gets it as StatusError (errors.h).
  Status result_;
  // Runs on the JS thread just before the callback (e.g. to unlock a grant
  // that nobody wants any more). May rewrite result_.
  virtual void Settle() {}
  // The grant, the callback's second argument (undefined by default).
  virtual Napi::Value Extra(Napi::Env env) { return env.Undefined(); }
  // Hands result_ to the JS thread now; run() may go on afterwards (a
  // parked mutex holder). Later calls, and finished(), do nothing.
  void Post();

 private:
  void finished() override { Post(); }
  bool posted_ = false;

  AddonData* data_;
  Napi::FunctionReference callback_;
  Napi::ObjectReference owner_;
};

}  // namespace interlock
