#include "addon_data.h"

#include <vector>

#include "async_wait.h"
#include "lock_object.h"

namespace interlock {

AddonData::AddonData(Napi::Env env) {
  channel = WaitChannel::New(env, "interlock:wait", 0, 1, this);
  channel.Unref(env);
}

// Raw calls, status ignored: see AsyncWait's constructor.
void AddonData::WaitStarted(Napi::Env env) {
  if (in_flight++ == 0) napi_ref_threadsafe_function(env, channel);
}

void AddonData::WaitDelivered(Napi::Env env) {
  if (--in_flight == 0) napi_unref_threadsafe_function(env, channel);
}

void AddonData::Teardown() {
  torn_down = true;
  objects.ForEach([](BindingObject* o) { o->CloseNow(true); });
  std::vector<AsyncWait*> pending(waits.begin(), waits.end());
  for (AsyncWait* w : pending) w->cancel();
  for (AsyncWait* w : pending) {
    w->join();
    w->Orphan();
  }
  waits.clear();
}

void DeliverWait(Napi::Env env, Napi::Function, AddonData* data, AsyncWait* wait) {
  if (env == nullptr || data == nullptr || data->torn_down) {
    wait->release();  // the channel is closing: drop the delivery's reference
    return;
  }
  wait->Deliver(env, data);
}

}  // namespace interlock
