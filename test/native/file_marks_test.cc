// FileMarks through LockFile: tokens, the exclusive mark and the shared count
// (file_marks.h). A LockFile closed while holding stands for a holder that
// died; unlock(false) for a grant nobody used, whose news must survive.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "harness.h"
#include "lock_file.h"
#include "util.h"

using interlock::Grant;
using interlock::LockFile;
using interlock::Request;
using testutil::TempDir;

namespace {

// One grant on a fresh LockFile (its own open file description).
Grant take(LockFile& f, bool shared) {
  Grant g;
  bool busy = true;
  CHECK_EQ(f.try_lock(Request{shared}, &g, &busy).error, 0);
  CHECK(!busy);
  return g;
}

// Removes the file's marks region when the case ends (the file goes first,
// so the last close() would remove it too; this covers a failed case).
struct Cleanup {
  std::string path;
  ~Cleanup() {
    unlink(path.c_str());
    interlock::FileMarks::prune("");
  }
};

}  // namespace

TEST(tokens_increase_and_clean_release_leaves_no_news) {
  TempDir dir;
  Cleanup c{dir.file("t.lock")};
  LockFile a(c.path, 0600, true), b(c.path, 0600, true);
  Grant g1 = take(a, false);
  CHECK(g1.token > 0);
  CHECK(!g1.owner_died);
  CHECK_EQ(a.unlock().error, 0);
  Grant g2 = take(b, true);
  Grant g3 = take(a, true);  // shared holders together
  CHECK(g2.token > g1.token);
  CHECK(g3.token > g2.token);
  CHECK(!g2.owner_died && !g3.owner_died);
  a.unlock();
  b.unlock();
  Grant g4 = take(b, false);
  CHECK(!g4.owner_died);
  CHECK(g4.token > g3.token);
}

TEST(exclusive_holder_closed_while_holding_is_reported_once) {
  TempDir dir;
  Cleanup c{dir.file("x.lock")};
  LockFile a(c.path, 0600, true), b(c.path, 0600, true);
  take(a, false);
  a.close();  // the fd goes, the mark stays: as if the holder died
  Grant g = take(b, true);
  CHECK(g.owner_died);  // a shared holder hears of a dead exclusive one
  b.unlock();
  CHECK(!take(b, false).owner_died);
}

TEST(shared_holder_closed_while_holding_is_reported_to_the_next_exclusive) {
  TempDir dir;
  Cleanup c{dir.file("s.lock")};
  LockFile a(c.path, 0600, true), b(c.path, 0600, true);
  take(a, true);
  take(b, true);
  a.close();
  b.unlock();
  CHECK(take(b, false).owner_died);
  b.unlock();
  CHECK(!take(b, false).owner_died);
}

TEST(unused_grant_keeps_the_news_for_the_next_holder) {
  TempDir dir;
  Cleanup c{dir.file("u.lock")};
  LockFile a(c.path, 0600, true), b(c.path, 0600, true);
  take(a, false);
  a.close();
  for (bool shared : {false, true}) {
    Grant g = take(b, shared);
    CHECK(g.owner_died);
    CHECK_EQ(b.unlock(false).error, 0);  // nobody used it (a wait cancelled as it won)
  }
  CHECK(take(b, false).owner_died);
  b.unlock();
  CHECK(!take(b, false).owner_died);
}

TEST_MAIN()
