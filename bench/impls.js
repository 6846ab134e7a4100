'use strict';
// Every lock under test behind one shape: `open(ctx)` gives `sync` and/or
// `async` forms of lock()/unlock() on a lock private to that impl. Peers are
// required lazily so a process loads only what it measures (fs-ext must never
// load in a Worker: it is not context-aware).
const fs = require('node:fs');
const path = require('node:path');

const interlock = () => require(path.join(__dirname, '..'));

function openFd(file) {
  return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
}

// Sleep without an event loop, for sync pollers.
const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms) {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * ctx: { dir, tag, contended }. A form is { lock, unlock }: `lock()` returns
 * (sync) or resolves to (async) a token that `unlock(token)` takes; an async
 * unlock may return a promise.
 */
const impls = {
  filelock: {
    label: 'interlock FileLock',
    // Handoff turns taken so far on the impl's lock (issue 14), read from outside.
    handoffs: (ctx) => interlock().FileLock.status(path.join(ctx.dir, 'filelock.lock')).handoffs,
    calls: { sync: 'acquireSync() + release()', async: 'await acquire() + release()' },
    forms: ['sync', 'async'],
    where: ['process', 'thread'],
    open(ctx) {
      const lock = new (interlock().FileLock)(path.join(ctx.dir, 'filelock.lock'));
      return {
        sync: { lock: () => lock.acquireSync(), unlock: (h) => h.release() },
        async: { lock: () => lock.acquire(), unlock: (h) => h.release() },
        close: () => lock.close(),
      };
    },
  },
  sharedmutex: {
    label: 'interlock SharedMutex',
    handoffs: (ctx) => interlock().SharedMutex.inspect(`${ctx.tag}-mutex`).handoffs,
    calls: { sync: 'acquireSync() + release()', async: 'await acquire() + release()' },
    forms: ['sync', 'async'],
    where: ['process', 'thread'],
    open(ctx) {
      const m = new (interlock().SharedMutex)(`${ctx.tag}-mutex`);
      return {
        sync: { lock: () => m.acquireSync(), unlock: (h) => h.release() },
        async: { lock: () => m.acquire(), unlock: (h) => h.release() },
        close: () => m.close(),
      };
    },
  },
  semaphore: {
    label: 'interlock Semaphore (1 permit)',
    calls: { sync: 'acquireSync() + release()', async: 'await acquire() + release()' },
    forms: ['sync', 'async'],
    where: ['process', 'thread'],
    // Its own figures are in bench/semaphore.js; here it is one more contended lock.
    contendedOnly: true,
    open(ctx) {
      const s = new (interlock().Semaphore)(`${ctx.tag}-sem`, { permits: 1 });
      return {
        sync: { lock: () => s.acquireSync(), unlock: (h) => h.release() },
        async: { lock: () => s.acquire(), unlock: (h) => h.release() },
        close: () => s.close(),
      };
    },
  },
  'proper-lockfile': {
    label: 'proper-lockfile',
    calls: { sync: 'lockSync() + release()', async: 'await lock() + await release()' },
    forms: ['sync', 'async'],
    where: ['process', 'thread'],
    open(ctx) {
      const lockfile = require('proper-lockfile');
      const file = path.join(ctx.dir, 'proper-lockfile.target');
      fs.closeSync(fs.openSync(file, 'a'));
      // Defaults when uncontended; contended it must retry: lockSync throws
      // ELOCKED at once (it refuses retries), lock() polls with backoff.
      const retries = ctx.contended ? { forever: true, minTimeout: 1, maxTimeout: 16, factor: 2 } : undefined;
      return {
        sync: {
          lock: () => {
            for (;;) {
              try {
                return lockfile.lockSync(file);
              } catch (err) {
                if (err.code !== 'ELOCKED' || !ctx.contended) throw err;
                sleepSync(1);
              }
            }
          },
          unlock: (release) => release(),
        },
        async: {
          lock: () => lockfile.lock(file, retries && { retries }),
          unlock: (release) => release(),
        },
        close: () => {},
      };
    },
  },
  'fs-ext': {
    label: 'fs-ext flock',
    calls: { sync: "flockSync(fd, 'ex'/'un')", async: "flock(fd, 'ex'/'un', cb)" },
    forms: ['sync', 'async'],
    where: ['process'],
    open(ctx) {
      const fsext = require('fs-ext');
      const fd = openFd(path.join(ctx.dir, 'fs-ext.lock'));
      const call = (op) =>
        new Promise((resolve, reject) => fsext.flock(fd, op, (err) => (err ? reject(err) : resolve())));
      return {
        sync: { lock: () => fsext.flockSync(fd, 'ex'), unlock: () => fsext.flockSync(fd, 'un') },
        async: { lock: () => call('ex'), unlock: () => call('un') },
        close: () => fs.closeSync(fd),
      };
    },
  },
  fsne: {
    label: 'fs-native-extensions (OFD)',
    calls: { sync: 'tryLock() (waitForLockSync() if busy) + unlock()', async: 'await waitForLock() + unlock()' },
    forms: ['sync', 'async'],
    where: ['process', 'thread'],
    open(ctx) {
      const fsx = require('fs-native-extensions');
      const fd = openFd(path.join(ctx.dir, 'fsne.lock'));
      return {
        sync: {
          lock: () => {
            if (!fsx.tryLock(fd)) fsx.waitForLockSync(fd);
          },
          unlock: () => fsx.unlock(fd),
        },
        async: { lock: () => fsx.waitForLock(fd), unlock: () => fsx.unlock(fd) },
        close: () => fs.closeSync(fd),
      };
    },
  },
  'os-lock': {
    label: 'os-lock (POSIX fcntl)',
    // POSIX record locks belong to the process: threads never exclude each other.
    calls: { async: 'await lock() + await unlock()' },
    forms: ['async'],
    where: ['process'],
    open(ctx) {
      const oslock = require('os-lock');
      const fd = openFd(path.join(ctx.dir, 'os-lock.lock'));
      return {
        async: { lock: () => oslock.lock(fd, { exclusive: true }), unlock: () => oslock.unlock(fd) },
        close: () => fs.closeSync(fd),
      };
    },
  },
  'async-mutex': {
    label: 'async-mutex (in-process only)',
    calls: { async: 'await acquire() + release()' },
    forms: ['async'],
    where: [],
    open() {
      const { Mutex } = require('async-mutex');
      const mutex = new Mutex();
      return {
        async: { lock: () => mutex.acquire(), unlock: (release) => release() },
        close: () => {},
      };
    },
  },
};

/** The shared counter every contended looper updates under the lock. */
function counterView(tag) {
  const { SharedMutex } = interlock();
  const data = new SharedMutex(`${tag}-data`, { dataSize: 64 }).data;
  return new Int32Array(data.buffer, data.byteOffset, 2); // [counter, last holder]
}

module.exports = { impls, counterView, sleepSync };
