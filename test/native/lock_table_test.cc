// LockTable (Web Locks): the W3C queue rules across clients of one table,
// ifAvailable, steal, abort, the snapshot's order, limits, a foreign table,
// and a dead client's requests and locks reaped through robust-mutex owner
// death (a waiter in another process is woken, not polled).
#include "lock_table.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <vector>

#include "clock.h"
#include "harness.h"
#include "util.h"

using interlock::ErrorKind;
using interlock::kLockEntries;
using interlock::kLockNameMax;
using interlock::LockEvent;
using interlock::LockInfo;
using interlock::LockMode;
using interlock::LockTable;
using interlock::monotonic_ns;
using interlock::Status;
using testutil::kPromptMs;
using testutil::ms_since;
using testutil::ShmName;

namespace {

constexpr LockMode kEx = LockMode::kExclusive;
constexpr LockMode kSh = LockMode::kShared;

struct Asked {
  uint64_t id;
  bool granted;
  bool unavailable;
};

Asked ask(LockTable& t, const std::u16string& name, LockMode mode, bool if_available = false, bool steal = false) {
  LockTable::Outcome out;
  Status st = t.request(name.data(), static_cast<uint32_t>(name.size()), mode, if_available, steal, &out);
  CHECK_EQ(st.error, 0);
  return Asked{out.id, out.granted, out.unavailable};
}

// What the watcher thread would hand to JS now: one watch() round.
std::vector<LockEvent> events(LockTable& t) {
  LockTable::Plan plan;
  bool posted = false;
  CHECK_EQ(t.watch(&plan, &posted).error, 0);
  return t.take_events();
}

bool has(const std::vector<LockEvent>& evs, uint64_t id, bool granted) {
  return std::any_of(evs.begin(), evs.end(), [&](const LockEvent& e) { return e.id == id && e.granted == granted; });
}

void open_table(LockTable& t, const ShmName& n, int32_t thread) { CHECK(t.open(n.name(), 0600, thread).ok()); }

size_t pending_count(LockTable& t) {
  std::vector<LockInfo> held, pending;
  CHECK_EQ(t.snapshot(&held, &pending).error, 0);
  return pending.size();
}

}  // namespace

TEST(exclusive_in_request_order_across_clients) {
  ShmName n("lt-order");
  LockTable a, b, c;
  open_table(a, n, 1);
  open_table(b, n, 2);
  open_table(c, n, 3);
  Asked ha = ask(a, u"x", kEx);
  CHECK(ha.granted);
  Asked hb = ask(b, u"x", kEx);
  Asked hc = ask(c, u"x", kEx);
  CHECK(!hb.granted);
  CHECK(!hc.granted);
  CHECK(ask(a, u"y", kEx).granted);  // another name is not blocked
  CHECK_EQ(a.release(ha.id).error, 0);
  CHECK(has(events(b), hb.id, true));
  CHECK(events(c).empty());  // still behind b
  CHECK_EQ(b.release(hb.id).error, 0);
  CHECK(has(events(c), hc.id, true));
}

TEST(shared_join_until_an_exclusive_request_is_queued) {
  ShmName n("lt-shared");
  LockTable a, b, c, d;
  open_table(a, n, 1);
  open_table(b, n, 2);
  open_table(c, n, 3);
  open_table(d, n, 4);
  Asked sa = ask(a, u"s", kSh);
  Asked sb = ask(b, u"s", kSh);
  CHECK(sa.granted);
  CHECK(sb.granted);
  Asked xc = ask(c, u"s", kEx);
  CHECK(!xc.granted);
  Asked sd = ask(d, u"s", kSh);
  CHECK(!sd.granted);  // behind the queued exclusive request, not beside the holders
  CHECK_EQ(a.release(sa.id).error, 0);
  CHECK(events(c).empty());
  CHECK_EQ(b.release(sb.id).error, 0);
  CHECK(has(events(c), xc.id, true));
  CHECK(events(d).empty());
  CHECK_EQ(c.release(xc.id).error, 0);
  CHECK(has(events(d), sd.id, true));
}

TEST(if_available_queues_nothing) {
  ShmName n("lt-ifavail");
  LockTable a, b;
  open_table(a, n, 1);
  open_table(b, n, 2);
  Asked held = ask(a, u"x", kEx);
  CHECK(held.granted);
  Asked none = ask(b, u"x", kEx, true);
  CHECK(none.unavailable);
  CHECK(!none.granted);
  CHECK_EQ(pending_count(a), 0u);
  Asked shared = ask(b, u"x", kSh, true);
  CHECK(shared.unavailable);
  CHECK_EQ(a.release(held.id).error, 0);
  Asked now = ask(b, u"x", kEx, true);
  CHECK(now.granted);
}

TEST(steal_breaks_every_holder_and_goes_first) {
  ShmName n("lt-steal");
  LockTable a, b, c, d;
  open_table(a, n, 1);
  open_table(b, n, 2);
  open_table(c, n, 3);
  open_table(d, n, 4);
  Asked sa = ask(a, u"x", kSh);
  Asked sb = ask(b, u"x", kSh);
  Asked wc = ask(c, u"x", kEx);
  CHECK(!wc.granted);
  Asked thief = ask(d, u"x", kEx, false, true);
  CHECK(thief.granted);
  CHECK(has(events(a), sa.id, false));  // lost, not granted
  CHECK(has(events(b), sb.id, false));
  CHECK(events(c).empty());  // still waiting, now behind the thief
  // The broken holders' releases release nothing of the thief's.
  CHECK_EQ(a.release(sa.id).error, 0);
  CHECK_EQ(b.release(sb.id).error, 0);
  CHECK(events(c).empty());
  CHECK_EQ(d.release(thief.id).error, 0);
  CHECK(has(events(c), wc.id, true));
}

TEST(abort_removes_a_pending_request_only) {
  ShmName n("lt-abort");
  LockTable a, b, c;
  open_table(a, n, 1);
  open_table(b, n, 2);
  open_table(c, n, 3);
  Asked ha = ask(a, u"x", kEx);
  Asked wb = ask(b, u"x", kEx);
  Asked wc = ask(c, u"x", kEx);
  bool removed = false;
  CHECK_EQ(b.abort(wb.id, &removed).error, 0);
  CHECK(removed);
  CHECK_EQ(a.release(ha.id).error, 0);
  CHECK(has(events(c), wc.id, true));  // the aborted one is skipped
  CHECK(events(b).empty());
  CHECK_EQ(c.abort(wc.id, &removed).error, 0);
  CHECK(!removed);  // granted: too late to abort
}

TEST(snapshot_held_in_grant_order_pending_in_queue_order) {
  ShmName n("lt-snapshot");
  LockTable a, b;
  open_table(a, n, 11);
  open_table(b, n, 22);
  ask(b, u"q", kEx);
  ask(a, u"p", kSh);
  ask(a, u"q", kEx);
  ask(b, u"p", kEx);
  std::vector<LockInfo> held, pending;
  CHECK_EQ(a.snapshot(&held, &pending).error, 0);
  CHECK_EQ(held.size(), 2u);
  CHECK(held[0].name == u"q");
  CHECK_EQ(held[0].thread, 22);
  CHECK(held[1].name == u"p");
  CHECK(held[1].mode == kSh);
  CHECK_EQ(held[1].pid, static_cast<int32_t>(getpid()));
  CHECK_EQ(pending.size(), 2u);
  CHECK(pending[0].name == u"q");
  CHECK_EQ(pending[0].thread, 11);
  CHECK(pending[1].name == u"p");
}

TEST(names_are_code_units_and_limits_are_errors) {
  ShmName n("lt-limits");
  LockTable a;
  open_table(a, n, 1);
  // A lone surrogate and U+FFFD are different names.
  CHECK(ask(a, std::u16string(1, u'\xD800'), kEx).granted);
  CHECK(ask(a, std::u16string(1, u'\xFFFD'), kEx).granted);
  CHECK(ask(a, u"", kEx).granted);
  std::u16string longest(kLockNameMax, u'n');
  CHECK(ask(a, longest, kEx).granted);
  std::u16string too_long(kLockNameMax + 1, u'n');
  LockTable::Outcome out;
  CHECK_EQ(a.request(too_long.data(), kLockNameMax + 1, kEx, false, false, &out).error, -ENAMETOOLONG);
  uint32_t made = 4;
  for (; made < kLockEntries; ++made) ask(a, u"fill", kSh);
  CHECK(a.request(u"one-more", 8, kEx, false, false, &out).kind == ErrorKind::kTableFull);
}

TEST(another_users_table_is_refused) {
  if (geteuid() != 0) {
    std::printf("  skipped: needs root to plant a table owned by another uid\n");
    return;
  }
  ShmName n("lt-foreign");
  {
    LockTable mine;
    open_table(mine, n, 1);
  }
  CHECK_EQ(chown(n.path().c_str(), 65534, 65534), 0);
  LockTable t;
  CHECK(t.open(n.name(), 0600, 1).kind == ErrorKind::kIncompatible);
  CHECK(!t.open());
}

// A client in a forked process holds "x" and is SIGKILLed while this
// process waits: the kernel marks its life word, the sleeping watcher wakes
// on it, and the next watch() reaps the dead client and grants us the lock.
TEST(dead_client_reaped_and_waiter_woken) {
  ShmName n("lt-death");
  int ready[2];
  CHECK_EQ(pipe(ready), 0);
  pid_t child = fork();
  CHECK_GE(child, 0);
  if (child == 0) {
    LockTable t;
    if (!t.open(n.name(), 0600, 7).ok()) _exit(2);
    LockTable::Outcome out;
    if (!t.request(u"x", 1, kEx, false, false, &out).ok() || !out.granted) _exit(3);
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(4);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char c = 0;
  CHECK_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  LockTable me;
  open_table(me, n, 1);
  Asked w = ask(me, u"x", kEx);
  CHECK(!w.granted);
  CHECK_EQ(me.live_clients(), 2u);
  LockTable::Plan plan;
  bool posted = false;
  CHECK_EQ(me.watch(&plan, &posted).error, 0);
  CHECK(!posted);
  CHECK_EQ(plan.words.size(), 1u);  // the holder's life word
  int64_t start = monotonic_ns();
  CHECK_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  CHECK_EQ(waitpid(child, &status, 0), child);
  me.sleep(plan, monotonic_ns() + 10'000'000'000);  // returns at once: the word changed
  double woke = ms_since(start);
  CHECK(has(events(me), w.id, true));
  CHECK_LT(woke, kPromptMs * 4);
  std::printf("  granted %.2f ms after SIGKILL\n", woke);
  CHECK_EQ(me.live_clients(), 1u);
  CHECK_EQ(me.release(w.id).error, 0);
}

TEST_MAIN()
