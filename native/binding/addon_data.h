// Per-environment state: one per JS thread (main or worker) that loads the
// addon, kept as instance data so several copies can live in one process.
#pragma once

#include <napi.h>

#include <unordered_set>
#include <vector>

namespace interlock {

class AsyncWait;
class BindingObject;
struct AddonData;

void DeliverWait(Napi::Env env, Napi::Function, AddonData* data, AsyncWait* wait);
using WaitChannel = Napi::TypedThreadSafeFunction<AddonData, AsyncWait, DeliverWait>;

// Live objects by small integer slot (see LockObject::FromSlot). The facade
// keeps the object alive while it uses the slot.
template <typename T>
class SlotTable {
 public:
  int Add(T* obj) {
    if (!free_.empty()) {
      int slot = free_.back();
      free_.pop_back();
      items_[static_cast<size_t>(slot)] = obj;
      return slot;
    }
    items_.push_back(obj);
    return static_cast<int>(items_.size() - 1);
  }
  void Remove(int slot) {
    items_[static_cast<size_t>(slot)] = nullptr;
    free_.push_back(slot);
  }
  T* Get(int slot) const {
    return slot >= 0 && static_cast<size_t>(slot) < items_.size() ? items_[static_cast<size_t>(slot)] : nullptr;
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (T* item : items_)
      if (item != nullptr) f(item);
  }

 private:
  std::vector<T*> items_;
  std::vector<int> free_;
};

struct AddonData {
  explicit AddonData(Napi::Env env);

  static AddonData* From(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

  // Keeps the event loop alive exactly while some wait is in flight.
  void WaitStarted(Napi::Env env);
  void WaitDelivered(Napi::Env env);

  // Worker exit or terminate(): close every object (its wait cancelled and
  // joined, its holds let go), then cancel and join the other waits
  // (flockAsync's).
  void Teardown();

  Napi::FunctionReference wait_ctor;
  // The binding's `lastGrant` (a Float64Array of one): where the hot-path
  // try writes a grant that fits a double, so that it returns a constant
  // (true) instead of allocating a heap number (see GrantOut). nullptr
  // when it could not be made (see MakeLastGrant in addon.cc).
  Napi::Reference<Napi::ArrayBuffer> last_grant;
  double* last_grant_at = nullptr;
  WaitChannel channel;
  int in_flight = 0;
  bool torn_down = false;
  std::unordered_set<AsyncWait*> waits;
  SlotTable<BindingObject> objects;
};

}  // namespace interlock
