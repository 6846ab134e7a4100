// A small test harness: TEST(name) registers a case, CHECK* fail it. Each
// case runs in its own process (ctest passes its name), so a failure, a hang
// or a sanitizer report is pinned to one case and no state leaks between them.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace harness {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

struct Register {
  Register(const char* name, void (*fn)()) { cases().push_back({name, fn}); }
};

// Paths a failing case must not leave behind (/dev/shm names, temp dirs):
// fail() skips destructors, so objects that own such paths register them.
inline std::vector<std::string>& cleanup_paths() {
  static std::vector<std::string> paths;
  return paths;
}

inline void forget_path(const std::string& path) {
  auto& all = cleanup_paths();
  for (size_t i = all.size(); i-- > 0;) {
    if (all[i] == path) {
      all.erase(all.begin() + static_cast<long>(i));
      break;
    }
  }
}

// _exit, not exit or abort: other threads may be blocked in flock, and the
// message is what a reader needs, not a core dump.
[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what.c_str());
  for (const std::string& p : cleanup_paths()) {
    std::string cmd = "rm -rf '" + p + "'";  // our own mkdtemp and /dev/shm names: no quotes in them
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", p.c_str());
  }
  std::fflush(stderr);
  std::fflush(stdout);
  _exit(1);
}

template <typename T>
std::string show(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_enum_v<T>) {
    return std::to_string(static_cast<long long>(v));
  } else if constexpr (std::is_arithmetic_v<T>) {
    return std::to_string(v);
  } else {
    return std::string(v);
  }
}

template <typename A, typename B, typename Cmp>
void check_cmp(const char* file, int line, const char* text, const A& a, const B& b, Cmp cmp) {
  if (!cmp(a, b)) fail(file, line, std::string(text) + " (" + show(a) + " vs " + show(b) + ")");
}

inline void run_case(const Case& c) {
  std::printf("[ RUN  ] %s\n", c.name);
  std::fflush(stdout);
  c.fn();
  std::printf("[   OK ] %s\n", c.name);
  std::fflush(stdout);
}

// With case names: runs those here (this is what ctest does, one per process).
// Without: runs every case in a forked child of a still single-threaded
// parent, so a direct run isolates cases the same way.
inline int run_main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const Case& c : cases()) std::printf("%s\n", c.name);
    return 0;
  }
  int ran = 0, failed = 0;
  for (const Case& c : cases()) {
    if (argc >= 2) {
      bool wanted = false;
      for (int i = 1; i < argc; ++i) wanted = wanted || std::strcmp(argv[i], c.name) == 0;
      if (!wanted) continue;
      run_case(c);
    } else {
      std::fflush(stdout);
      pid_t child = fork();
      if (child == 0) {
        run_case(c);
        std::exit(0);  // exit, not _exit: sanitizers report at exit
      }
      int status = -1;
      while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      if (child < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::printf("[ FAIL ] %s\n", c.name);
        ++failed;
      }
    }
    ++ran;
  }
  if (ran == 0) {
    std::fprintf(stderr, "no test case matched\n");
    return 2;
  }
  if (argc < 2) std::printf("%d cases, %d failed\n", ran, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace harness

#define TEST(name)                                                    \
  static void test_##name();                                          \
  static const harness::Register register_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) harness::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b) \
  harness::check_cmp(__FILE__, __LINE__, #a " == " #b, (a), (b), [](const auto& x, const auto& y) { return x == y; })
#define CHECK_NE(a, b) \
  harness::check_cmp(__FILE__, __LINE__, #a " != " #b, (a), (b), [](const auto& x, const auto& y) { return x != y; })
#define CHECK_LT(a, b) \
  harness::check_cmp(__FILE__, __LINE__, #a " < " #b, (a), (b), [](const auto& x, const auto& y) { return x < y; })
#define CHECK_LE(a, b) \
  harness::check_cmp(__FILE__, __LINE__, #a " <= " #b, (a), (b), [](const auto& x, const auto& y) { return x <= y; })
#define CHECK_GE(a, b) \
  harness::check_cmp(__FILE__, __LINE__, #a " >= " #b, (a), (b), [](const auto& x, const auto& y) { return x >= y; })

#define TEST_MAIN() \
  int main(int argc, char** argv) { return harness::run_main(argc, argv); }
