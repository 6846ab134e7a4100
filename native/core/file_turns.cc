// FileLock handoff turns (issue 14) in a lock file's marks: the SharedMutex
// policy (shared_region.h) over flock(2). flock keeps no queue we could hand
// the lock along, so a turn works by everyone else stepping aside: a try
// reports busy, a waiter parks on `turn_seq` instead of blocking in flock,
// and a waiter granted the flock anyway gives it straight back, until the
// turn's own waiter (blocked in flock) is granted it. Only interlock users
// on this machine and uid step aside: flock(1) and every other flock user
// keep racing, and without marks there are no turns.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "clock.h"
#include "file_marks.h"
#include "shared_region.h"
#include "turn.h"

namespace interlock {
namespace {

// A waiter holding a turn wakes this often to see that it still has it (a
// stale-looking turn is ended by the others, see turn_stale).
constexpr int64_t kRecheckNs = kTurnGraceMs * 1000 * 1000 / 2;

}  // namespace

bool FileMarks::turn_bars(uint64_t turn, int fd) {
  if (!turn_stale(turn, fd)) return true;
  end_turn(turn);
  lost();
  return false;
}

void FileMarks::end_turn(uint64_t turn) { end_turn_in(state(), turn); }

// Its thread is gone, or the lock has been free kTurnGraceMs without it
// being taken (its waiter is stopped or starved of CPU itself). Free as far
// as flock knows: a probe with LOCK_NB on our own fd (we hold nothing on it
// while we wait), so a holder that died without releasing, or a flock(1)
// holder, is seen as it is; the probe holds the lock for a few syscalls.
bool FileMarks::turn_stale(uint64_t turn, int fd) {
  if (turn_thread_gone(turn)) return true;
  FileMarksState* s = state();
  if (fd < 0) return false;  // nothing to probe with
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    s->free_since_ms.store(0, std::memory_order_relaxed);
    return false;
  }
  ::flock(fd, LOCK_UN);
  uint32_t since = s->free_since_ms.load(std::memory_order_relaxed);
  if (since == 0) {
    s->free_since_ms.compare_exchange_strong(since, monotonic_ms32() | 1, std::memory_order_relaxed);
    return false;
  }
  return ms_since(since) > kTurnGraceMs;
}

// Parks until the turn changes or `until_ns`. The counter and the turn are
// both seq_cst on each side, so a turn that ends between our check and the
// futex wait either is seen here or bumps turn_seq first (EAGAIN). A signal
// (a cancel's or deadline's interrupter tick) ends the wait early too.
void FileMarks::defer(uint64_t turn, int64_t until_ns) {
  FileMarksState* s = state();
  s->deferring.fetch_add(1);
  uint32_t seq = s->turn_seq.load();
  if (s->turn.load() == turn) futex_wait(&s->turn_seq, seq, until_ns);
  s->deferring.fetch_sub(1);
}

FileMarks::Next FileMarks::step(uint64_t me, int64_t starving_at_ns, uint64_t yielded, int64_t until_ns, int fd,
                                int64_t* wake_ns) {
  *wake_ns = kNoDeadline;
  if (!file_.mapped()) return Next::kBlock;
  FileMarksState* s = state();
  int64_t now = monotonic_ns();
  uint64_t turn = s->turn.load();
  Next next = Next::kAgain;
  if (turn == me) {
    *wake_ns = now + kRecheckNs;
    next = Next::kBlock;
  } else if (turn != 0) {
    if (now >= starving_at_ns && turn_older(me, turn)) {
      s->turn.compare_exchange_strong(turn, me);  // the longest waiter's turn
    } else if (turn == yielded) {
      // We were granted the lock and gave it back: blocking in flock again
      // would win it again while the turn's waiter is still being woken.
      if (turn_stale(turn, fd)) {
        end_turn(turn);
      } else {
        defer(turn, until_ns);
      }
    } else if (turn_thread_gone(turn)) {
      end_turn(turn);
    } else {
      *wake_ns = now + kRecheckNs;
      next = Next::kBlock;
    }
  } else {
    // No turn sooner than kTurnSpacingNs after the last was served: between
    // handoffs, holders keep the cheap barging path.
    int64_t at = std::max(starving_at_ns, s->served_ns.load(std::memory_order_relaxed) + kTurnSpacingNs);
    if (now < at) {
      *wake_ns = at;
      next = Next::kBlock;
    } else if (s->turn.compare_exchange_strong(turn, me)) {
      s->handoffs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (lost()) return Next::kAgain;  // the next step blocks plainly
  return next;
}

bool FileMarks::admit(uint64_t me, uint64_t turn) {
  if (turn != me) return lost();  // marks gone: nothing to wait for
  FileMarksState* s = state();
  s->free_since_ms.store(0, std::memory_order_relaxed);
  s->served_ns.store(monotonic_ns(), std::memory_order_relaxed);
  end_turn(turn);
  return true;
}

void FileMarks::leave(uint64_t me) {
  if (!file_.mapped() || state()->turn.load(std::memory_order_relaxed) != me) return;
  end_turn(me);
  lost();
}

bool FileMarks::peek_turns(const std::string& path, Turns* out) {
  *out = Turns{};
  struct stat st;
  if (syscall(SYS_newfstatat, AT_FDCWD, path.c_str(), &st, 0) != 0) return false;
  uint64_t birth = birth_time_ns_at(path);
  RegionHeader h;
  FileMarksState s;
  std::string name = name_for(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), birth);
  if (!RegionFile::peek(name, RegionKind::kFileMarks, &h, &s, sizeof(s)).ok()) return false;
  out->handoff = s.turn.load(std::memory_order_relaxed) != 0;
  out->handoffs = s.handoffs.load(std::memory_order_relaxed);
  return true;
}

}  // namespace interlock
