// Helpers shared by the native tests: temp dirs, timing, and a way to know a
// thread is really blocked in a syscall before the test tries to wake it.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "harness.h"

namespace testutil {

inline pid_t thread_id() { return static_cast<pid_t>(syscall(SYS_gettid)); }

inline double ms_since(int64_t start_ns) { return static_cast<double>(interlock::monotonic_ns() - start_ns) / 1e6; }

inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Upper bound for "promptly" on a shared 2-core VM under sanitizers: a broken
// wake-up hangs forever, so a generous bound still catches it.
constexpr double kPromptMs = 250;

// A fresh directory, removed (one level deep) when the test ends.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/interlock-native-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) harness::fail(__FILE__, __LINE__, "mkdtemp");
    path_ = buf.data();
    harness::cleanup_paths().push_back(path_);
  }
  ~TempDir() {
    harness::forget_path(path_);
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") unlink((path_ + "/" + name).c_str());
      }
      closedir(d);
    }
    rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A /dev/shm name private to this process, removed at the end.
class ShmName {
 public:
  explicit ShmName(const char* tag)
      : name_(std::string("interlock-native-") + std::to_string(getpid()) + "-" + tag), path_("/dev/shm/" + name_) {
    unlink(path_.c_str());
    harness::cleanup_paths().push_back(path_);
  }
  ~ShmName() {
    harness::forget_path(path_);
    unlink(path_.c_str());
    rmdir(path_.c_str());
  }
  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }

 private:
  std::string name_, path_;
};

inline int open_rw(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) harness::fail(__FILE__, __LINE__, "open " + path);
  return fd;
}

inline ino_t inode_of_fd(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) harness::fail(__FILE__, __LINE__, "fstat");
  return st.st_ino;
}

inline ino_t inode_of_path(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) harness::fail(__FILE__, __LINE__, "stat " + path);
  return st.st_ino;
}

// The syscall thread `tid` of this process is blocked in, -1 if none. Reads
// /proc/self/task/<tid>/syscall ("73 0x3 ..." while inside flock).
inline long current_syscall(pid_t tid) {
  std::string p = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  FILE* f = std::fopen(p.c_str(), "r");
  if (f == nullptr) return -2;
  long nr = -1;
  if (std::fscanf(f, "%ld", &nr) != 1) nr = -1;  // "running"
  std::fclose(f);
  return nr;
}

// Waits until `tid` sits in syscall `nr` (e.g. SYS_flock). Fails the test
// after two seconds; without /proc it just gives the thread time to get there.
inline void await_blocked_in(pid_t tid, long nr) {
  int64_t start = interlock::monotonic_ns();
  for (;;) {
    long now = current_syscall(tid);
    if (now == nr) {
      sleep_ms(1);  // in the syscall, and asleep by now
      return;
    }
    if (now == -2) {
      sleep_ms(50);
      return;
    }
    if (ms_since(start) > 2000) harness::fail(__FILE__, __LINE__, "thread never blocked in syscall");
    std::this_thread::yield();
  }
}

// Prints a latency series so runs can be compared; returns the maximum.
inline double report_latency(const char* what, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  double max = ms.back();
  std::printf("  %s: n=%zu median=%.3f ms max=%.3f ms\n", what, ms.size(), median, max);
  return max;
}

}  // namespace testutil
