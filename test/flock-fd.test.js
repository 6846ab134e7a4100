'use strict';
// flock(fd, op, opts) and flockSync for code that owns its fd: the modes,
// nonblocking misses, real waits against flock(1), timeout and abort, and
// waits that run on dedicated threads rather than libuv's pool.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { flock, flockSync, LockError, AbortError } = require('..');
const {
  tmpDir,
  threadCount,
  settledThreadCount,
  sleep,
  holdFlock,
  othersCanLock,
  readFileMedian,
} = require('./support/helpers');

const MARGIN = 400; // ms of scheduling slack: CI reruns this file inside a Worker under Bun and Deno on a loaded 2-core VM
const ETIMEDOUT = -110;

describe('flock(fd) and flockSync(fd)', () => {
  let dir;
  let n = 0;
  const fds = [];
  const holders = [];

  before(() => {
    dir = tmpDir();
  });

  afterEach(async () => {
    for (const h of holders.splice(0)) await h.release();
    for (const fd of fds.splice(0)) fs.closeSync(fd);
  });

  /** A fresh file and an fd of ours on it. */
  function openFresh() {
    const file = path.join(dir, `fd-${n++}.lock`);
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r');
    fds.push(fd);
    return { file, fd };
  }

  async function heldFresh(options) {
    const { file, fd } = openFresh();
    const holder = await holdFlock(file, options);
    holders.push(holder);
    return { file, fd, holder };
  }

  it('flockSync ex / sh / un set and drop the kernel lock that other processes see', () => {
    const { file, fd } = openFresh();
    assert.equal(flockSync(fd, 'ex'), true);
    assert.equal(othersCanLock(file, { shared: true }), false, 'exclusive: flock -n -s fails');
    assert.equal(flockSync(fd, 'un'), true);
    assert.equal(othersCanLock(file), true, 'unlocked: flock -n succeeds');
    assert.equal(flockSync(fd, 'sh'), true);
    assert.equal(othersCanLock(file, { shared: true }), true, 'shared coexists with flock -s');
    assert.equal(othersCanLock(file), false, 'shared excludes flock -x');
    assert.equal(flockSync(fd, 'un'), true);
    assert.equal(othersCanLock(file), true);
  });

  it('flock ex / sh / un resolve true and act at once when free', async () => {
    const { file, fd } = openFresh();
    assert.equal(await flock(fd, 'ex'), true);
    assert.equal(othersCanLock(file, { shared: true }), false);
    assert.equal(await flock(fd, 'sh'), true, 'converts in place');
    assert.equal(othersCanLock(file, { shared: true }), true);
    assert.equal(othersCanLock(file), false);
    assert.equal(await flock(fd, 'un'), true);
    assert.equal(othersCanLock(file), true);
  });

  it('nonblocking: resolves / returns false when flock(1) holds it, true when shared fits', async () => {
    const { fd } = await heldFresh();
    assert.equal(await flock(fd, 'ex', { nonblocking: true }), false);
    assert.equal(await flock(fd, 'sh', { nonblocking: true }), false);
    assert.equal(flockSync(fd, 'ex', { nonblocking: true }), false);
    const shared = await heldFresh({ shared: true });
    assert.equal(flockSync(shared.fd, 'ex', { nonblocking: true }), false);
    assert.equal(await flock(shared.fd, 'sh', { nonblocking: true }), true);
    assert.equal(flockSync(shared.fd, 'un'), true);
  });

  it('a blocking flock waits for the other holder and resolves when it exits', async () => {
    const { file, fd, holder } = await heldFresh();
    let settled = false;
    const p = flock(fd, 'ex').finally(() => {
      settled = true;
    });
    await sleep(50);
    assert.equal(settled, false, 'waits while flock(1) holds the lock');
    await holder.release();
    assert.equal(await p, true);
    assert.equal(othersCanLock(file), false, 'we hold it now');
    flockSync(fd, 'un');
  });

  it('a blocking flockSync waits for the other holder and returns when it exits', async () => {
    const { file, fd } = openFresh();
    // flock(1) holding for 200 ms, then exiting: the wait must outlast it.
    const child = spawn('flock', [file, 'sh', '-c', 'echo locked; sleep 0.2']);
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const t = performance.now();
    assert.equal(flockSync(fd, 'ex'), true);
    const ms = performance.now() - t;
    assert.ok(ms > 100, `waited ${ms.toFixed(1)} ms for the holder`);
    flockSync(fd, 'un');
    await new Promise((resolve) => (child.exitCode === null ? child.on('exit', resolve) : resolve()));
  });

  it('timeout: flock rejects and flockSync throws ETIMEDOUT promptly, leaving nothing held', async () => {
    const { file, fd, holder } = await heldFresh();
    let t = performance.now();
    const err = await flock(fd, 'ex', { timeout: 80 }).then(
      () => assert.fail('granted while flock(1) holds the lock'),
      (e) => e,
    );
    let ms = performance.now() - t;
    assert.ok(err instanceof LockError, String(err));
    assert.equal(err.code, 'ETIMEDOUT');
    assert.equal(err.errno, ETIMEDOUT);
    assert.equal(err.syscall, 'flock');
    assert.ok(err.stack.includes(__filename), `the stack names the caller's file:\n${err.stack}`);
    assert.ok(ms >= 75 && ms < 80 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);

    t = performance.now();
    assert.throws(
      () => flockSync(fd, 'ex', { timeout: 80 }),
      (e) => e instanceof LockError && e.code === 'ETIMEDOUT' && e.errno === ETIMEDOUT,
    );
    ms = performance.now() - t;
    assert.ok(ms >= 75 && ms < 80 + MARGIN, `threw after ${ms.toFixed(1)} ms`);

    await holder.release();
    assert.ok(othersCanLock(file), 'no late grant on our fd after the timeout');
  });

  it('abort: AbortError with cause === signal.reason; an aborted signal rejects at once', async () => {
    const { file, fd, holder } = await heldFresh();
    const ac = new AbortController();
    const reason = new Error('stop');
    setTimeout(() => ac.abort(reason), 40);
    const t = performance.now();
    const err = await flock(fd, 'ex', { signal: ac.signal }).then(
      () => assert.fail('granted while flock(1) holds the lock'),
      (e) => e,
    );
    const ms = performance.now() - t;
    assert.ok(err instanceof AbortError && err instanceof LockError, String(err));
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
    assert.equal(err.cause, reason);
    assert.ok(ms < 40 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);

    const threads = threadCount();
    const early = await flock(fd, 'ex', { signal: AbortSignal.abort(reason) }).then(
      () => assert.fail('granted'),
      (e) => e,
    );
    assert.equal(early.code, 'ABORT_ERR');
    assert.equal(early.cause, reason);
    assert.ok(threadCount() <= threads, 'no wait thread for an already-aborted signal');

    await holder.release();
    assert.ok(othersCanLock(file), 'no late grant on our fd after the abort');
  });

  it('a grant racing the timeout wins: the answer always matches what the fd holds', async () => {
    // The other holder is a second open file description of this thread,
    // unlocked by a timer due in the same instant as the timeout.
    const { file, fd } = openFresh();
    const other = fs.openSync(file, 'r');
    fds.push(other);
    const probe = fs.openSync(file, 'r');
    fds.push(probe);
    const counts = { granted: 0, timedOut: 0 };
    for (let i = 0; i < 100; i++) {
      flockSync(other, 'ex');
      const ms = 1 + (i % 3);
      let p;
      let unlocked;
      const unlock = () => new Promise((resolve) => setTimeout(() => resolve(flockSync(other, 'un')), ms));
      if (i % 2) {
        unlocked = unlock();
        p = flock(fd, 'ex', { timeout: ms });
      } else {
        p = flock(fd, 'ex', { timeout: ms });
        unlocked = unlock();
      }
      const granted = await p.then(
        (v) => v,
        (err) => {
          assert.equal(err.code, 'ETIMEDOUT');
          return false;
        },
      );
      // Wait for the unlock itself: under load a timeout can settle before
      // a timer due at the same millisecond has run (seen in CI).
      await unlocked;
      const free = flockSync(probe, 'ex', { nonblocking: true });
      if (free) flockSync(probe, 'un');
      assert.equal(free, !granted, `round ${i}: resolved ${granted} but the lock is ${free ? 'free' : 'held'}`);
      if (granted) flockSync(fd, 'un');
      counts[granted ? 'granted' : 'timedOut']++;
    }
    assert.equal(counts.granted + counts.timedOut, 100);
  });

  it('8 pending flock(fd) waits on 8 fds leave libuv pool free (fs.readFile still fast)', async () => {
    // The fs-ext control in waiting.test.js shows this measurement fails
    // when blocking flocks sit on the pool.
    const { file } = await heldFresh();
    const probeFile = path.join(dir, 'probe.txt');
    fs.writeFileSync(probeFile, 'x'.repeat(4096));
    await readFileMedian(probeFile, 5);
    const baseline = await settledThreadCount();
    const before = await readFileMedian(probeFile);
    const mine = [];
    for (let i = 0; i < 8; i++) {
      const fd = fs.openSync(file, 'r');
      fds.push(fd);
      mine.push(fd);
    }
    const order = [];
    const waits = mine.map((fd, i) =>
      flock(fd, 'ex').then((ok) => {
        order.push(i);
        flockSync(fd, 'un'); // lets the next fd's wait through
        return ok;
      }),
    );
    await sleep(50);
    const during = await readFileMedian(probeFile);
    const grown = threadCount() - baseline;
    assert.deepEqual(order, [], 'all 8 wait while flock(1) holds the lock');
    // A blocked pool gives no answer at all until flock(1) lets go: the
    // bound only has to stay above a loaded machine's noise.
    assert.ok(
      during < before * 5 + 25,
      `readFile median ${during.toFixed(3)} ms during vs ${before.toFixed(3)} ms before`,
    );
    assert.ok(grown <= 8 + 2, `threads grew by ${grown} for 8 waits`);
    for (const h of holders.splice(0)) await h.release();
    assert.deepEqual(await Promise.all(waits), Array(8).fill(true));
    assert.equal(order.length, 8);
    assert.ok(othersCanLock(file));
  });
});
