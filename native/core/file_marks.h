// A lock file's marks: the fencing token and the holder marks that let the
// next holder hear that the previous one died inside its section. flock(2)
// itself keeps nothing but "held", so they live beside it, in a small region
// (RegionKind::kFileMarks) named after the file:
//
//   /dev/shm/interlock-file-<euid>-<st_dev>-<st_ino>-<birth time, ns, hex>
//
// One per user (mode 0600, another user's region is refused): tokens and
// ownerDied cover this user's interlock holders on this machine (on this
// /dev/shm), not flock(1) or other flock users. The birth time keeps a new
// file that reuses a dead file's inode number from inheriting its marks.
//
// Every mark is written under the flock just granted (granted()) or still
// held (released()), so an exclusive holder is alone with them; shared
// holders meet only in atomics. The lock never depends on its marks: when
// the region cannot be had (a full /dev/shm, a squatter at the name, a damaged
// file), grants carry token 0 and no news, and status() says why.
// No Node-API here.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "primitive.h"
#include "region_file.h"
#include "status.h"

namespace interlock {

struct FileMarksState {
  // +1 per grant, exclusive or shared. Seeded at creation from CLOCK_REALTIME
  // in microseconds, so that a region removed under a lock that lives on (a
  // user's /dev/shm files cleared at logout) does not restart it below the
  // tokens already handed out.
  std::atomic<uint64_t> token;
  // 1 from an exclusive grant to its clean release: still 1 at the next grant
  // means that holder died or was torn down inside its section.
  std::atomic<uint32_t> exclusive;
  // Shared grants not released cleanly yet. Nonzero at an exclusive grant
  // (when no shared holder can be alive) means a shared holder died.
  std::atomic<uint32_t> shared;
  // The file the region is named after, for prune().
  uint64_t dev, ino, birth_ns;
  // Handoff turns (issue 14), as SharedMutex has them (see kStarvingNs in
  // shared_region.h and "Turns" in lock_file.cc); zero at creation.
  // The pending turn: 0, or a waiter's turn_id() (turn.h).
  std::atomic<uint64_t> turn;
  std::atomic<uint32_t> turn_seq;   // futex word: +1 whenever a turn ends
  std::atomic<uint32_t> deferring;  // threads parked on turn_seq
  std::atomic<int64_t> served_ns;   // CLOCK_MONOTONIC when the last turn got the lock
  // monotonic_ms32() | 1 since the lock was seen free (released by us, or
  // found free by a deferring waiter's probe); 0 once granted or seen held.
  std::atomic<uint32_t> free_since_ms;
  uint32_t unused;
  std::atomic<uint64_t> handoffs;  // turns taken since the region was made
  std::atomic<uint64_t> reserved[3];
};
// Regions made before turns had zeroes here (reserved): they still open.
static_assert(offsetof(FileMarksState, turn) == 40 && sizeof(FileMarksState) == 104,
              "FileMarksState must keep the layout regions already have");

class FileMarks {
 public:
  FileMarks() = default;
  FileMarks(const FileMarks&) = delete;
  FileMarks& operator=(const FileMarks&) = delete;

  // Maps the marks of the file open at `fd`, creating them if new (then
  // prunes this user's regions of files gone from their recorded paths).
  // `path` is recorded at creation. A failure leaves them unmapped and is
  // kept in status(); it is never the lock's failure.
  void open(int fd, const struct stat& st, const std::string& path);
  // Unmaps. `unlinked`: the file has no name left, so nobody can open it
  // again; the last user to leave removes the region.
  void close(bool unlinked);
  bool mapped() const { return file_.mapped(); }
  // Ok, or why there are no marks (the region's errno or code, and call).
  Status status() const { return status_; }
  const std::string& name() const { return name_; }
  // After a foreign-owner or too-open refusal: the region file's owner.
  uid_t owner_uid() const { return file_.file_uid(); }

  // Under the flock just granted: the token, and whether a holder died.
  void granted(bool shared, Grant* grant);
  // Under the flock about to be released. `keep_news`: nobody used this
  // grant (a wait cancelled as it won), so the owner-death news it took is
  // left for the next holder.
  void released(bool shared, bool keep_news);

  // Handoff turns (issue 14). `me` is the caller's turn_id() (turn.h); 0
  // for a try that never waits. Without marks there are no turns: every
  // call lets the caller go on as plain flock.
  //
  // The pending turn, 0 for none. Inline, as the next two's common case:
  // every try and grant asks, and there is seldom a turn.
  uint64_t pending_turn() const { return file_.mapped() ? state()->turn.load(std::memory_order_acquire) : 0; }
  // Whether a pending turn bars a try (it reports busy: no barging). A
  // stale turn (see turn_stale) is ended instead, as waiters do, so a
  // try-only user is not refused for ever after its waiter was killed.
  // `fd`: as for step(), or -1 where it holds the lock (no probe).
  bool turn_bars(int fd) {
    uint64_t turn = pending_turn();
    return turn != 0 && turn_bars(turn, fd);
  }
  // Before a waiter blocks in flock. kAgain: it took or displaced a turn,
  // ended a stale one, or deferred to `yielded` (the turn it gave a grant
  // back to, parked until that turn changes or `until_ns`); look again.
  // kBlock: block in flock (so /proc/locks shows it waiting), waking at
  // *wake_ns (kNoDeadline: not needed) to take a turn or look at the
  // pending one again. `fd`: the caller's lock file, for probing whether
  // the lock is free (see turn_stale).
  enum class Next { kBlock, kAgain };
  Next step(uint64_t me, int64_t starving_at_ns, uint64_t yielded, int64_t until_ns, int fd, int64_t* wake_ns);
  // Under the flock just granted, before granted(): false if another
  // waiter's turn is pending, and the caller must give the lock back. Ends
  // the caller's own turn (served).
  bool admit(uint64_t me) {
    if (!file_.mapped()) return true;
    FileMarksState* s = state();
    uint64_t turn = s->turn.load();
    if (turn != 0) return admit(me, turn);
    s->free_since_ms.store(0, std::memory_order_relaxed);
    return true;
  }
  // On the way out of a wait: ends the caller's turn if it still has one.
  void leave(uint64_t me);
  struct Turns {
    bool handoff;       // a starving waiter's turn is pending
    uint64_t handoffs;  // turns taken so far
  };
  // Of the file at `path` (stat(2), following symlinks), without mapping
  // or creating its marks. False (and zeroes) when it has none for this user.
  static bool peek_turns(const std::string& path, Turns* out);

  // The region name of a file, for this process's effective uid.
  static std::string name_for(uint64_t dev, uint64_t ino, uint64_t birth_ns);
  // Removes this user's marks of files no longer at their recorded path
  // (or replaced there), unless someone maps them; skips `keep`. Examines at
  // most `most` regions, the next in a process-wide rotation. How many.
  static int prune(const std::string& keep, size_t most = SIZE_MAX);

 private:
  FileMarksState* state() const { return static_cast<FileMarksState*>(file_.state()); }
  // The mapping lost pages: stop using it (the lock goes on without marks).
  bool lost();
  // The slow halves of turn_bars() and admit(): a turn is pending.
  bool turn_bars(uint64_t turn, int fd);
  bool admit(uint64_t me, uint64_t turn);
  void end_turn(uint64_t turn);
  bool turn_stale(uint64_t turn, int fd);
  void defer(uint64_t turn, int64_t until_ns);

  RegionFile file_;
  std::string name_;
  Status status_;
};

// The file's birth time in ns (statx), or 0 where the filesystem keeps none.
uint64_t birth_time_ns(int fd);
// The same for the file at `path` (following symlinks).
uint64_t birth_time_ns_at(const std::string& path);

}  // namespace interlock
