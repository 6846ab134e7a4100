#include "wait.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "interrupter.h"

namespace interlock {

class WaitThreads {
 public:
  static WaitThreads& get() {
    static auto* instance = new WaitThreads();  // never destroyed: threads may outlive exit()
    return *instance;
  }

  int dispatch(Wait* w) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      Slot* slot = idle_.back();
      idle_.pop_back();
      slot->job = w;
      slot->cv.notify_one();
      return 0;
    }
    auto* slot = new Slot();
    slot->job = w;
    int err = spawn(slot);
    if (err != 0) delete slot;
    return err;
  }

  int alive() {
    std::lock_guard<std::mutex> lock(mu_);
    return alive_;
  }

  int idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(idle_.size());
  }

 private:
  struct Slot {
    std::condition_variable cv;
    Wait* job = nullptr;
  };

  static constexpr auto kLinger = std::chrono::milliseconds(200);
  static constexpr size_t kStack = 256 * 1024;
  static constexpr const char* kThreadName = "interlock-wait";  // at most 15 characters

  // Called with mu_ held.
  int spawn(Slot* slot) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, kStack);
    // The new thread starts with process signals (SIGINT, SIGCHLD…) blocked,
    // so they keep going to Node's threads; it then unblocks the interrupt
    // signal.
    sigset_t all, old;
    sigfillset(&all);
    // Faults stay deliverable: a blocked SIGBUS raised by a fault kills the
    // process outright, bypassing the handler that rescues a truncated region.
    for (int sig : {SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP}) sigdelset(&all, sig);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid;
    int err = pthread_create(&tid, &attr, &WaitThreads::main, slot);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    if (err == 0) ++alive_;
    return -err;
  }

  static void* main(void* arg) {
    auto* slot = static_cast<Slot*>(arg);
    // A name of our own, so a leak check (and a user's `top -H`) can tell the
    // addon's threads from the runtime's, which come and go on their own.
    prctl(PR_SET_NAME, kThreadName);
    unblock_interrupt_signal();
    Interrupter intr;
    WaitThreads& self = get();
    std::unique_lock<std::mutex> lock(self.mu_);
    while (slot->job != nullptr) {
      Wait* w = slot->job;
      slot->job = nullptr;
      lock.unlock();
      run_one(w, &intr);
      lock.lock();
      self.idle_.push_back(slot);
      slot->cv.wait_for(lock, kLinger, [slot] { return slot->job != nullptr; });
      if (slot->job == nullptr) {
        // Timed out: leave the idle list (dispatch may not pick us now).
        for (size_t i = 0; i < self.idle_.size(); ++i) {
          if (self.idle_[i] == slot) {
            self.idle_.erase(self.idle_.begin() + static_cast<long>(i));
            break;
          }
        }
      }
    }
    --self.alive_;
    lock.unlock();
    delete slot;
    return nullptr;
  }

  static void run_one(Wait* w, Interrupter* intr) {
    {
      std::lock_guard<std::mutex> lock(w->mu_);
      w->intr_ = intr;
      if (w->cancel_.load(std::memory_order_acquire)) {
        intr->fire_now();
      } else if (w->deadline_ != kNoDeadline) {
        intr->arm_at(w->deadline_);
      }
    }
    w->run();
    {
      std::lock_guard<std::mutex> lock(w->mu_);
      intr->disarm();
      w->intr_ = nullptr;
    }
    w->finished();
    {
      std::lock_guard<std::mutex> lock(w->mu_);
      w->done_ = true;
      w->cv_.notify_all();
    }
    w->release();  // the running thread's reference
  }

  std::mutex mu_;
  std::vector<Slot*> idle_;
  int alive_ = 0;
};

int Wait::start(int64_t deadline_ns) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return -EALREADY;
    started_ = true;
    deadline_ = deadline_ns;
  }
  retain();
  int err = WaitThreads::get().dispatch(this);
  if (err != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = false;
    refs_.fetch_sub(1, std::memory_order_relaxed);
  }
  return err;
}

void Wait::cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_.store(true, std::memory_order_release);
    if (intr_ != nullptr) intr_->fire_now();
  }
  on_cancel();
}

void Wait::join() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) return;
  cv_.wait(lock, [this] { return done_; });
}

bool Wait::done() {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

int wait_threads_alive() { return WaitThreads::get().alive(); }
int wait_threads_idle() { return WaitThreads::get().idle(); }

}  // namespace interlock
