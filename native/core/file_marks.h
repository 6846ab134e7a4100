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
  // Zero at creation; kept for the handoff mode (issue 14), which needs
  // per-file shared state too.
  std::atomic<uint64_t> reserved[8];
};

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

  // The region name of a file, for this process's effective uid.
  static std::string name_for(uint64_t dev, uint64_t ino, uint64_t birth_ns);
  // Removes this user's marks of files no longer at their recorded path
  // (or replaced there), unless someone maps them; skips `keep`. How many.
  static int prune(const std::string& keep);

 private:
  FileMarksState* state() const { return static_cast<FileMarksState*>(file_.state()); }
  // The mapping lost pages: stop using it (the lock goes on without marks).
  bool lost();

  RegionFile file_;
  std::string name_;
  Status status_;
};

// The file's birth time in ns (statx), or 0 where the filesystem keeps none.
uint64_t birth_time_ns(int fd);

}  // namespace interlock
