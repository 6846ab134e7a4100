#include "file_marks.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

#include "clock.h"
#include "shared_region.h"  // kStarvingNs, kTurnGraceMs: one policy for every kind
#include "turn.h"

namespace interlock {
namespace {

// The lock file's path as first recorded, NUL-terminated; a longer one is
// not recorded (such marks are then removed only by their last user, see
// close()).
constexpr uint64_t kPathBytes = 1024;
// prune() looks at a few system calls' worth of each region it examines.
// Examining every region at each creation made a process that makes many
// lock files pay for the whole directory each time: 2,000 new files took 57 s
// beside 5,000 regions (the soak's leak control overran its budget on that).
// A creation examines kPruneEach, the next ones in a process-wide rotation,
// so a gone file's region is still removed within (regions / kPruneEach)
// creations, and at the first one while there are at most kPruneEach.
constexpr size_t kPruneEach = 32;

// The rotation: hashes of the names, the last one examined. Atomic, not a
// mutex, so that a fork in the middle leaves nothing locked.
std::atomic<uint64_t> prune_cursor{0};

uint64_t name_hash(const char* name) {  // FNV-1a: any stable spread will do
  uint64_t h = 14695981039346656037ull;
  for (; *name != 0; ++name) h = (h ^ static_cast<unsigned char>(*name)) * 1099511628211ull;
  return h;
}

RegionSpec marks_spec() { return RegionSpec{RegionKind::kFileMarks, sizeof(FileMarksState), kPathBytes, 0600, false}; }

struct Creation {
  uint64_t dev, ino, birth_ns;
  const std::string* path;
  bool created = false;
};

Status init_marks(void* state, void* arg) {
  auto* s = static_cast<FileMarksState*>(state);
  auto* c = static_cast<Creation*>(arg);
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  s->token.store(uint64_t(now.tv_sec) * 1000000 + uint64_t(now.tv_nsec) / 1000, std::memory_order_relaxed);
  s->dev = c->dev;
  s->ino = c->ino;
  s->birth_ns = c->birth_ns;
  c->created = true;
  return Status{};
}

// statx through syscall(2): glibc's wrapper is a 2.28 symbol, and the
// kernel's struct statx is the one glibc declares.
uint64_t birth_of(int dirfd, const char* path, int flags) {
  struct statx stx;
  if (syscall(SYS_statx, dirfd, path, flags, STATX_BTIME, &stx) != 0) return 0;
  if ((stx.stx_mask & STATX_BTIME) == 0) return 0;
  return uint64_t(stx.stx_btime.tv_sec) * 1000000000 + stx.stx_btime.tv_nsec;
}

// Whether the region at `fd` (ours, exclusively flocked: nobody maps it)
// names a file that is no longer at its recorded path.
bool names_gone_file(int fd, const std::string& name) {
  RegionHeader h;
  FileMarksState s;
  if (!RegionFile::peek(name, RegionKind::kFileMarks, &h, &s, sizeof(s)).ok()) return false;
  char path[kPathBytes];
  off_t at = static_cast<off_t>(RegionFile::region_size(marks_spec()) - kPathBytes);
  if (pread(fd, path, sizeof(path), at) != static_cast<ssize_t>(sizeof(path))) return false;
  path[sizeof(path) - 1] = 0;
  if (path[0] != '/') return false;  // not recorded
  struct stat st;
  if (syscall(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT;
  if (st.st_dev != s.dev || st.st_ino != s.ino) return true;
  return birth_of(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW) != s.birth_ns;
}

// Whether `name` still names the file we flocked as `st` (another pruner may
// have removed it and an opener made a new region under the name since).
bool still_named(int dirfd, const char* name, const struct stat& st) {
  struct stat now;
  return syscall(SYS_newfstatat, dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == st.st_dev &&
         now.st_ino == st.st_ino;
}

}  // namespace

uint64_t birth_time_ns(int fd) { return birth_of(fd, "", AT_EMPTY_PATH); }
uint64_t birth_time_ns_at(const std::string& path) { return birth_of(AT_FDCWD, path.c_str(), 0); }

std::string FileMarks::name_for(uint64_t dev, uint64_t ino, uint64_t birth_ns) {
  char name[128];
  snprintf(name, sizeof(name), "interlock-file-%u-%llu-%llu-%llx", static_cast<unsigned>(geteuid()),
           static_cast<unsigned long long>(dev), static_cast<unsigned long long>(ino),
           static_cast<unsigned long long>(birth_ns));
  return name;
}

void FileMarks::open(int fd, const struct stat& st, const std::string& path) {
  close(false);
  Creation c{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), birth_time_ns(fd), &path};
  name_ = name_for(c.dev, c.ino, c.birth_ns);
  status_ = file_.open(name_, marks_spec(), init_marks, &c);
  if (!status_.ok()) return;
  if (c.created) {
    if (path.size() < kPathBytes) std::memcpy(file_.data(), path.c_str(), path.size() + 1);
    prune(name_, kPruneEach);
  }
}

void FileMarks::close(bool unlinked) {
  if (!file_.mapped()) return;
  file_.unmap();
  if (!unlinked) return;
  // Our own shared flock is gone with the mapping; an exclusive one now means
  // nobody else maps the region either.
  std::string path = "/dev/shm/" + name_;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && still_named(AT_FDCWD, path.c_str(), st)) {
    unlink(path.c_str());
  }
  ::close(fd);
}

bool FileMarks::lost() {
  if (!file_.lost()) return false;
  file_.mark_broken();
  file_.unmap();
  status_ = Status{ErrorKind::kDamaged, "mmap"};
  return true;
}

void FileMarks::granted(bool shared, Grant* grant) {
  *grant = Grant{};
  if (!file_.mapped()) return;
  FileMarksState* s = state();
  bool died;
  if (shared) {
    // Only a dead exclusive holder can have left this set while we hold a
    // shared lock; one shared holder takes the news.
    died = s->exclusive.load(std::memory_order_relaxed) != 0 && s->exclusive.exchange(0) != 0;
    s->shared.fetch_add(1, std::memory_order_acq_rel);
  } else {
    died = s->exclusive.exchange(1, std::memory_order_acq_rel) != 0;
    if (s->shared.load(std::memory_order_relaxed) != 0) {
      s->shared.store(0, std::memory_order_relaxed);
      died = true;
    }
  }
  uint64_t token = s->token.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (lost()) return;
  grant->owner_died = died;
  grant->token = token;
}

void FileMarks::released(bool shared, bool keep_news) {
  if (!file_.mapped()) return;
  FileMarksState* s = state();
  bool last = true;
  if (shared) {
    if (keep_news) s->exclusive.store(1, std::memory_order_release);
    last = s->shared.fetch_sub(1, std::memory_order_acq_rel) == 1;
  } else if (!keep_news) {
    s->exclusive.store(0, std::memory_order_release);
  }
  // The stale-turn clock starts here (see turn_stale), if a turn is pending:
  // nobody reads it otherwise, and a turn taken after this load finds it 0
  // (admit() cleared it at the grant) and starts it at its first probe of
  // the free lock, as after a flock(1) holder. Most releases find no turn
  // and skip the clock read.
  if (last && s->turn.load(std::memory_order_relaxed) != 0) {
    s->free_since_ms.store(monotonic_ms32() | 1, std::memory_order_relaxed);
  }
  lost();
}

int FileMarks::prune(const std::string& keep, size_t most) {
  std::string prefix = "interlock-file-" + std::to_string(geteuid()) + "-";
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return 0;
  // Names cost no system call each (getdents returns them in batches): take
  // them all, and examine the `most` that follow the cursor in hash order.
  std::vector<std::pair<uint64_t, std::string>> names;
  while (dirent* e = readdir(dir)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) != 0 || keep == e->d_name) continue;
    names.emplace_back(name_hash(e->d_name), e->d_name);
  }
  uint64_t cursor = prune_cursor.load(std::memory_order_relaxed);
  auto after_cursor = [cursor](const std::pair<uint64_t, std::string>& a, const std::pair<uint64_t, std::string>& b) {
    // Hashes above the cursor first, then the wrapped ones, each ascending.
    bool a_later = a.first > cursor, b_later = b.first > cursor;
    return a_later != b_later ? a_later : a < b;
  };
  size_t n = std::min(most, names.size());
  std::partial_sort(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(n), names.end(), after_cursor);
  if (n > 0) prune_cursor.store(names[n - 1].first, std::memory_order_relaxed);
  int removed = 0;
  for (size_t i = 0; i < n; ++i) {
    const char* name = names[i].second.c_str();
    int fd = openat(dirfd(dir), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st;
    // Ours, and nobody maps it (every user holds a shared flock) or is
    // creating it: then nobody can start to while we hold this one.
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        names_gone_file(fd, name) && still_named(dirfd(dir), name, st) && unlinkat(dirfd(dir), name, 0) == 0) {
      ++removed;
    }
    ::close(fd);
  }
  closedir(dir);
  return removed;
}

}  // namespace interlock
