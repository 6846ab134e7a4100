'use strict';
// Shared test utilities: temp dirs, /proc counters, child processes.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const made = [];

/** A fresh directory removed after the whole run. */
function tmpDir(prefix = 'interlock-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

process.on('exit', () => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * The addon's threads in this process: those in /proc/self/task named
 * "interlock-wait" (native/core/wait.cc names its wait threads so). The
 * runtime's own threads are not counted: Bun, Deno and newer Node start and
 * end pool threads on their own schedule, which made a whole-process count
 * drift by one (a Bun Worker once had 18 threads where the baseline had 17).
 * The waiting test asserts this count grows during a blocked wait, so a lost
 * name cannot make every leak check pass unseen.
 */
function threadCount() {
  let n = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      if (fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8') === 'interlock-wait\n') n++;
    } catch {} // ended since the listing
  }
  return n;
}

// System call numbers a wait thread blocks in: x86-64's, then arm64's (under
// qemu-user /proc shows the host's x86-64 call). On either architecture the
// other's number is a call no wait thread sits in (arm64 220 is clone, 73
// ppoll; x86-64 192 is lgetxattr, 32 dup).
const BLOCKING_CALLS = { semtimedop: [220, 192], flock: [73, 32] };

/**
 * How many of this process's wait threads are blocked in `call` right now
 * (/proc/self/task/TID/syscall): a test that needs a native wait to be in the
 * kernel waits for this instead of sleeping a guess.
 */
function waitsBlockedIn(call) {
  const numbers = BLOCKING_CALLS[call];
  let n = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      if (fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8') !== 'interlock-wait\n') continue;
      const nr = Number(fs.readFileSync(`/proc/self/task/${tid}/syscall`, 'utf8').split(' ')[0]);
      if (numbers.includes(nr)) n++;
    } catch {} // ended since the listing
  }
  return n;
}

/**
 * Open fds of this process on files, fd number -> what it points at, from
 * /proc/self/fd. The runtime's own event plumbing (sockets, pipes, epoll and
 * eventfd inodes) is left out: Bun opens and closes such fds around
 * spawnSync after it returns, so counting them would make the count drift;
 * the addon opens only files and /dev/shm.
 */
function openFiles() {
  const files = new Map();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('/')) files.set(fd, target);
    } catch {} // closed since the listing: it is not open
  }
  return files;
}

/** How many fds of this process are open on files (see openFiles). */
function fdCount() {
  return openFiles().size;
}

/**
 * The files opened since `before` (an openFiles() snapshot) and still open,
 * as "fd -> path": a leak check that the runtime closing one of its own files
 * meanwhile cannot upset (Deno closed one during a bad-input row on CI, and
 * a count then read 10 where 11 was due).
 */
function filesOpenedSince(before) {
  return [...openFiles()].filter(([fd, target]) => before.get(fd) !== target).map(([fd, t]) => `${fd} -> ${t}`);
}

/** fds of this process that point at `file`. */
function fdsOn(file) {
  const target = fs.realpathSync(file);
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === target) n++;
    } catch {}
  }
  return n;
}

/** The runtime running the tests, with its version: "Node 22.23.5", "Bun 1.4.5". */
function runtime() {
  if (process.versions.bun) return `Bun ${process.versions.bun}`;
  if (process.versions.deno) return `Deno ${process.versions.deno}`;
  return `Node ${process.versions.node}`;
}

/** Skips the running test (mocha's `this`), printing the runtime and why. */
function skipBecause(ctx, reason) {
  console.log(`      skipped on ${runtime()}: ${reason}`);
  ctx.skip(); // the reason is printed just above, with the runtime
}

/**
 * Arguments for `process.execPath` to evaluate `code` with `args`, which
 * the code reads as `argv[0]`, `argv[1]`…. Not process.argv[1]: Node puts
 * the first argument there, Deno's eval the path of its own script
 * ($deno$eval.mts), so the arguments are taken from the end.
 */
function evalArgs(code, ...args) {
  return ['-e', `const argv = process.argv.slice(process.argv.length - ${args.length});\n${code}`, ...args];
}

/**
 * A script in `dir` that runs its arguments with this runtime, for shell
 * scripts to call. Deno runs a script only with `run` and permissions; its
 * spawn adds them when JS starts it, and also inserts them after its own path
 * wherever that appears in another program's argv (a shell's positional
 * arguments then shift), so scripts must not be handed process.execPath.
 */
function runtimeScript(dir) {
  const file = path.join(dir, 'runtime');
  const flags = process.versions.deno ? ' run -A' : '';
  fs.writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}'${flags} "$@"\n`, { mode: 0o755 });
  return file;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `pred` until true or `ms` elapse; returns its last value. */
async function waitFor(pred, ms = 5000, step = 10) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v || Date.now() > end) return v;
    await sleep(step);
  }
}

/** `promise`'s value, or a failure if it takes longer than `ms`. */
async function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `cmd args` and resolves once its stdout has printed `ready` (a
 * string to look for), so tests can act while the child holds a lock.
 */
function startChild(cmd, args, ready, options = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  // `exited` follows 'exit' (a grandchild holding our pipes cannot delay it),
  // so `out` may lack the last lines; `closed` waits for the pipes to drain.
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out, err })));
  const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out, err })));
  const started = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (ready !== undefined && out.includes(ready)) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before '${ready}': ${err}`)));
    if (ready === undefined) resolve(child);
  });
  return { child, started, exited, closed };
}

/**
 * Holds `file` with util-linux flock(1) in another process until release().
 * The holder blocks in `cat` on a pipe from us, so it also lets go if we die.
 */
async function holdFlock(file, { shared = false } = {}) {
  const args = [shared ? '-s' : '-x', file, 'sh', '-c', 'echo locked; exec cat >/dev/null'];
  const { child, started, exited } = startTracked('flock', args, 'locked', { stdio: ['pipe', 'pipe', 'pipe'] });
  await started;
  return {
    child,
    async release() {
      child.stdin.end();
      await exited;
    },
  };
}

/** Whether another process could take `file` right now (`flock -n`). */
function othersCanLock(file, { shared = false } = {}) {
  const r = spawnSync('flock', ['-n', shared ? '-s' : '-x', file, 'true']);
  return r.status === 0;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median ms of `n` sequential fs.readFile calls (each goes through libuv's pool). */
async function readFileMedian(file, n = 30) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await new Promise((resolve, reject) => fs.readFile(file, (err) => (err ? reject(err) : resolve())));
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(times);
}

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const tracked = new Set();

/**
 * startChild in its own process group, remembered until it exits, so that
 * killChildren() takes down it and whatever it forked (flock(1) leaves its
 * command running, which would keep mocha's pipes open).
 */
function startTracked(cmd, args, ready, options = {}) {
  const started = startChild(cmd, args, ready, { detached: true, ...options });
  const { child } = started;
  tracked.add(child);
  child.on('exit', () => tracked.delete(child));
  return started;
}

/** startTracked for `node test/fixtures/<name> ...args`, stdin piped. */
function startFixture(name, args, ready, options = {}) {
  const stdio = ['pipe', 'pipe', 'pipe'];
  return startTracked(process.execPath, [path.join(FIXTURES, name), ...args], ready, { stdio, ...options });
}

/** SIGKILLs the process group of every tracked child still running. */
function killChildren() {
  for (const child of tracked) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }
  tracked.clear();
}

process.on('exit', killChildren);

const NOBODY = 65534;
let forNobody = null; // { exec, fixtures }, made once per process

/** Whether uid 65534 can `test -flag` the path (reach it through every directory). */
const nobodyCan = (flag, file) => spawnSync('test', [flag, file], { uid: NOBODY, gid: NOBODY }).status === 0;

/**
 * The runtime and fixtures as uid 65534 can reach them. A checkout under
 * /root (the usual place as root in a container) is closed to other users,
 * and so are runtimes cached inside it: then the package (package.json,
 * dist/, the addon, node-gyp-build), the fixtures and the runtime are
 * copied once to a temp dir everyone may read.
 */
function reachableByNobody() {
  if (forNobody) return forNobody;
  const root = path.join(__dirname, '..', '..');
  forNobody = { exec: process.execPath, fixtures: FIXTURES };
  if (!nobodyCan('-x', process.execPath)) {
    const bin = tmpDir('interlock-runtime-');
    forNobody.exec = path.join(bin, path.basename(process.execPath));
    fs.copyFileSync(process.execPath, forNobody.exec);
    fs.chmodSync(forNobody.exec, 0o755);
    fs.chmodSync(bin, 0o755);
  }
  if (!nobodyCan('-r', path.join(FIXTURES, 'hold.js'))) {
    const copy = tmpDir('interlock-package-');
    for (const part of [
      'package.json',
      'dist',
      'build/Release/interlock.node',
      'node_modules/node-gyp-build',
      'test/fixtures',
    ]) {
      fs.cpSync(path.join(root, part), path.join(copy, part), { recursive: true });
    }
    fs.chmodSync(copy, 0o755);
    forNobody.fixtures = path.join(copy, 'test', 'fixtures');
  }
  return forNobody;
}

/** Runs test/fixtures/<name> as uid 65534 (we must be root); resolves its stdout. */
function execAsNobody(name, args, { timeout = 10000 } = {}) {
  const { exec, fixtures } = reachableByNobody();
  const { execFile } = require('node:child_process');
  return new Promise((resolve, reject) =>
    execFile(exec, [path.join(fixtures, name), ...args], { uid: NOBODY, gid: NOBODY, timeout }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
}

/**
 * Thread count once it has stopped changing: wait threads linger ~200 ms
 * after their last wait, so a baseline taken too early would include them.
 */
async function settledThreadCount(ms = 3000) {
  let last = threadCount();
  await waitFor(async () => {
    await sleep(250);
    const now = threadCount();
    const stable = now === last;
    last = now;
    return stable;
  }, ms);
  return last;
}

/** Unlinks the Semaphores named in `names` (region and set) and empties it; missing ones are fine. */
function unlinkSemaphores(names) {
  const { Semaphore } = require('../..');
  for (const name of names.splice(0)) {
    try {
      Semaphore.unlink(name);
    } catch {} // a run that failed before making it
  }
}

module.exports = {
  tmpDir,
  threadCount,
  waitsBlockedIn,
  openFiles,
  filesOpenedSince,
  fdCount,
  fdsOn,
  runtime,
  skipBecause,
  evalArgs,
  runtimeScript,
  sleep,
  waitFor,
  within,
  startChild,
  holdFlock,
  othersCanLock,
  median,
  readFileMedian,
  FIXTURES,
  startTracked,
  startFixture,
  execAsNobody,
  killChildren,
  settledThreadCount,
  unlinkSemaphores,
};
