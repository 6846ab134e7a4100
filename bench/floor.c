// The C floor for bench/: what flock(2) and a robust process-shared pthread
// mutex cost with nothing in between. Built by bench/floor.js (cc -O2).
//
//   floor pair flock|flock-fstat|mutex <path> <ms> <reps>
//       prints one line per rep: ns per acquire+release pair
//   floor contend flock|mutex <path> <procs> <threads> <ms>
//       forks procs x threads loopers doing lock -> counter += 1 -> unlock;
//       prints one JSON line: counts, transfers, counter, elapsed
//   floor handoff flock|mutex sync|async <path> <samples> <pauseUs>
//       a holder process releases while a forked waiter is parked; prints
//       one JSON line: release -> waiter running, in us, per sample. sync:
//       the waiter blocks in flock/pthread_mutex_lock itself. async: a waiter
//       thread blocks there, then wakes the waiter's loop through an eventfd
//       it sleeps on in epoll_wait (what a thread-safe function does).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOOPERS 256

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

// The same attributes interlock's SharedMutex uses.
static void init_mutex(pthread_mutex_t *m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  if (pthread_mutex_init(m, &attr) != 0) die("pthread_mutex_init");
  pthread_mutexattr_destroy(&attr);
}

static void mutex_lock(pthread_mutex_t *m) {
  int rc = pthread_mutex_lock(m);
  if (rc == EOWNERDEAD)
    pthread_mutex_consistent(m);
  else if (rc != 0)
    die("pthread_mutex_lock");
}

static int open_lock(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) die("open");
  return fd;
}

static void flock_or_die(int fd, int op) {
  while (flock(fd, op) != 0)
    if (errno != EINTR) die("flock");
}

static void *shared_memory(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

// ---- uncontended pairs

enum pair_kind { PAIR_FLOCK, PAIR_FLOCK_FSTAT, PAIR_MUTEX };

static void pair_batch(enum pair_kind kind, int fd, pthread_mutex_t *m, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (kind == PAIR_MUTEX) {
      mutex_lock(m);
      pthread_mutex_unlock(m);
      continue;
    }
    flock_or_die(fd, LOCK_EX);
    if (kind == PAIR_FLOCK_FSTAT) {  // what FileLock adds: its unlink check
      struct stat sb;
      if (fstat(fd, &sb) != 0) die("fstat");
    }
    flock_or_die(fd, LOCK_UN);
  }
}

static int pair(const char *name, const char *path, int ms, int reps) {
  enum pair_kind kind = strcmp(name, "mutex") == 0         ? PAIR_MUTEX
                        : strcmp(name, "flock-fstat") == 0 ? PAIR_FLOCK_FSTAT
                                                           : PAIR_FLOCK;
  int fd = -1;
  pthread_mutex_t *m = NULL;
  if (kind == PAIR_MUTEX) {
    m = shared_memory(sizeof(*m));
    init_mutex(m);
  } else {
    fd = open_lock(path);
  }
  // A batch of about 1 ms keeps clock reads out of the figure; sizing it
  // doubles as the warm-up.
  int64_t batch = 1;
  for (;;) {
    int64_t t0 = now_ns();
    pair_batch(kind, fd, m, batch);
    if (now_ns() - t0 >= 1000000 || batch > (1 << 26)) break;
    batch *= 2;
  }
  for (int r = 0; r < reps; r++) {
    int64_t t0 = now_ns(), end = t0 + (int64_t)ms * 1000000, n = 0, t1;
    do {
      pair_batch(kind, fd, m, batch);
      n += batch;
      t1 = now_ns();
    } while (t1 < end);
    printf("%.2f\n", (double)(t1 - t0) / (double)n);
    fflush(stdout);
  }
  return 0;
}

// ---- contended loopers

struct shared {
  pthread_mutex_t mutex;
  volatile uint64_t counter;
  volatile int32_t last;
  int64_t start_ns, end_ns;
  uint64_t counts[MAX_LOOPERS];
  uint64_t transfers[MAX_LOOPERS];
  int64_t stopped_ns[MAX_LOOPERS];
};

static struct shared *S;
static const char *lock_path;
static int use_mutex;

struct looper {
  int id;
  pthread_t thread;
};

static void *loop(void *arg) {
  struct looper *lp = arg;
  int fd = use_mutex ? -1 : open_lock(lock_path);  // one open file description per thread
  uint64_t n = 0, transfers = 0;
  struct timespec start = {S->start_ns / 1000000000, S->start_ns % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &start, NULL) == EINTR) {
  }
  int64_t t;
  while ((t = now_ns()) < S->end_ns) {
    if (use_mutex)
      mutex_lock(&S->mutex);
    else
      flock_or_die(fd, LOCK_EX);
    uint64_t v = S->counter;
    S->counter = v + 1;
    if (S->last != lp->id + 1) {  // the previous holder was another looper
      transfers++;
      S->last = lp->id + 1;
    }
    if (use_mutex)
      pthread_mutex_unlock(&S->mutex);
    else
      flock_or_die(fd, LOCK_UN);
    n++;
  }
  S->counts[lp->id] = n;
  S->transfers[lp->id] = transfers;
  S->stopped_ns[lp->id] = now_ns();
  if (fd >= 0) close(fd);
  return NULL;
}

static void run_process(int proc, int threads) {
  struct looper lps[MAX_LOOPERS];
  for (int t = 0; t < threads; t++) {
    lps[t].id = proc * threads + t;
    if (pthread_create(&lps[t].thread, NULL, loop, &lps[t]) != 0) die("pthread_create");
  }
  for (int t = 0; t < threads; t++) pthread_join(lps[t].thread, NULL);
}

static int contend(const char *kind, const char *path, int procs, int threads, int ms) {
  if (procs * threads > MAX_LOOPERS || procs < 1 || threads < 1) {
    fprintf(stderr, "too many loopers\n");
    return 2;
  }
  use_mutex = strcmp(kind, "mutex") == 0;
  lock_path = path;
  S = shared_memory(sizeof(*S));
  init_mutex(&S->mutex);
  // Start together once every process exists: fork costs less than this.
  S->start_ns = now_ns() + 30000000;
  S->end_ns = S->start_ns + (int64_t)ms * 1000000;
  for (int p = 0; p < procs; p++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      run_process(p, threads);
      _exit(0);
    }
  }
  for (int p = 0; p < procs; p++) {
    int status;
    if (wait(&status) < 0) die("wait");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "looper failed\n");
      return 2;
    }
  }
  int64_t stopped = S->start_ns;
  printf("{\"counter\":%llu,\"counts\":[", (unsigned long long)S->counter);
  for (int i = 0; i < procs * threads; i++) {
    printf("%s%llu", i ? "," : "", (unsigned long long)S->counts[i]);
    if (S->stopped_ns[i] > stopped) stopped = S->stopped_ns[i];
  }
  printf("],\"transfers\":[");
  for (int i = 0; i < procs * threads; i++) printf("%s%llu", i ? "," : "", (unsigned long long)S->transfers[i]);
  printf("],\"elapsedNs\":%lld}\n", (long long)(stopped - S->start_ns));
  return 0;
}

// ---- handoff latency

struct handoff {
  pthread_mutex_t mutex;
  volatile int32_t round;   // the holder's: wait for round n now
  volatile int32_t parked;  // the waiter's: about to block for round n
  volatile int32_t done;    // the waiter's: had and let go round n
  volatile int64_t released_ns;
  volatile int64_t running_ns;
};

static struct handoff *H;
static int handoff_mutex;

static void pause_until(volatile int32_t *word, int32_t n) {
  while (*word < n) usleep(20);
}

static void take(int fd) {
  if (handoff_mutex)
    mutex_lock(&H->mutex);
  else
    flock_or_die(fd, LOCK_EX);
}

static void give(int fd) {
  if (handoff_mutex)
    pthread_mutex_unlock(&H->mutex);
  else
    flock_or_die(fd, LOCK_UN);
}

struct waiter_thread {
  int fd, efd, samples;
};

// The async shape's waiter thread: blocks for the lock, then rings the
// eventfd. For the mutex it must also unlock (a pthread mutex belongs to the
// thread that locked it), once the loop has run.
static void *wait_thread(void *arg) {
  struct waiter_thread *w = arg;
  for (int i = 1; i <= w->samples; i++) {
    pause_until(&H->round, i);
    H->parked = i;
    take(w->fd);
    uint64_t one = 1;
    if (write(w->efd, &one, sizeof(one)) != sizeof(one)) die("write");
    pause_until(&H->done, i);
    give(w->fd);
  }
  return NULL;
}

static void waiter(const char *path, int async, int samples) {
  int fd = handoff_mutex ? -1 : open_lock(path);
  if (!async) {
    for (int i = 1; i <= samples; i++) {
      pause_until(&H->round, i);
      H->parked = i;
      take(fd);
      H->running_ns = now_ns();
      give(fd);
      H->done = i;
    }
    return;
  }
  int efd = eventfd(0, EFD_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (efd < 0 || ep < 0) die("eventfd/epoll");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) die("epoll_ctl");
  struct waiter_thread w = {fd, efd, samples};
  pthread_t t;
  if (pthread_create(&t, NULL, wait_thread, &w) != 0) die("pthread_create");
  for (int i = 1; i <= samples; i++) {
    struct epoll_event got;
    while (epoll_wait(ep, &got, 1, -1) != 1) {
    }
    H->running_ns = now_ns();
    uint64_t n;
    if (read(efd, &n, sizeof(n)) != sizeof(n)) die("read");
    H->done = i;
  }
  pthread_join(t, NULL);
}

static int handoff(const char *kind, const char *shape, const char *path, int samples, int pause_us) {
  handoff_mutex = strcmp(kind, "mutex") == 0;
  int async = strcmp(shape, "async") == 0;
  H = shared_memory(sizeof(*H));
  init_mutex(&H->mutex);
  int fd = handoff_mutex ? -1 : open_lock(path);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    waiter(path, async, samples);
    _exit(0);
  }
  printf("[");
  for (int i = 1; i <= samples; i++) {
    take(fd);
    H->round = i;
    pause_until(&H->parked, i);
    usleep(pause_us);  // let it block in the kernel
    H->released_ns = now_ns();
    give(fd);
    pause_until(&H->done, i);
    printf("%s%.2f", i > 1 ? "," : "", (double)(H->running_ns - H->released_ns) / 1e3);
  }
  printf("]\n");
  int status;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "waiter failed\n");
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "pair") == 0) return pair(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
  if (argc == 7 && strcmp(argv[1], "contend") == 0)
    return contend(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
  if (argc == 7 && strcmp(argv[1], "handoff") == 0)
    return handoff(argv[2], argv[3], argv[4], atoi(argv[5]), atoi(argv[6]));
  fprintf(stderr,
          "usage: floor pair flock|flock-fstat|mutex <path> <ms> <reps>\n"
          "       floor contend flock|mutex <path> <procs> <threads> <ms>\n"
          "       floor handoff flock|mutex sync|async <path> <samples> <pauseUs>\n");
  return 2;
}
