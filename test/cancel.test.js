'use strict';
// Timeout and abort: prompt, typed rejections that never leak. After a
// cancelled wait no native thread stays blocked and no grant stays held, so
// another process can take the lock the moment its holder lets go.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FileLock, LockError, AbortError, flockSync } = require('..');
const { tmpDir, threadCount, settledThreadCount, waitFor, holdFlock, othersCanLock } = require('./support/helpers');

const MARGIN = 400; // ms of scheduling slack: CI reruns this file inside a Worker under Bun and Deno on a loaded 2-core VM
const ETIMEDOUT = -110;

/** The line number of the caller, to find that line in a stack. */
function lineHere() {
  return Number(/:(\d+):\d+\)?$/.exec(new Error().stack.split('\n')[2])[1]);
}

/** The rejection of `promise` and how long it took, in ms. */
// `t` is when the acquire was called: under emulation the call itself can
// take milliseconds, which must count toward the timeout.
async function rejection(promise, t = performance.now()) {
  try {
    await promise;
  } catch (err) {
    return { err, ms: performance.now() - t };
  }
  assert.fail('expected a rejection');
}

function assertTimeoutError(err, lock) {
  assert.ok(err instanceof LockError, `LockError, got ${err}`);
  assert.equal(err.code, 'ETIMEDOUT');
  assert.equal(err.errno, ETIMEDOUT);
  assert.equal(err.syscall, 'flock');
  assert.equal(err.path, lock.path);
  assert.ok(err.stack.includes(__filename), `the stack names the caller's file:\n${err.stack}`);
}

function assertAbortError(err, lock, reason) {
  assert.ok(err instanceof AbortError && err instanceof LockError, `AbortError, got ${err}`);
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
  assert.equal(err.cause, reason);
  assert.equal(err.path, lock.path);
}

describe('timeout and abort', () => {
  let dir;
  let baseline;
  const holders = [];
  const locks = [];
  let n = 0;

  before(async () => {
    dir = tmpDir();
    baseline = await settledThreadCount();
  });

  afterEach(async () => {
    for (const h of holders.splice(0)) await h.release();
    for (const l of locks.splice(0)) l.close();
  });

  /** A fresh lock file held by flock(1), and our FileLock on it. */
  async function heldLock() {
    const file = path.join(dir, `held-${n++}.lock`);
    const holder = await holdFlock(file);
    holders.push(holder);
    const lock = new FileLock(file);
    locks.push(lock);
    return { file, holder, lock };
  }

  /** Lets the holder go and checks that nobody on our side grabs the lock. */
  async function assertNoLeak(file, holder) {
    await holder.release();
    assert.ok(othersCanLock(file), 'another process takes the lock at once: no leaked grant or wait');
  }

  it('timeout rejects promptly with ETIMEDOUT and leaks nothing', async () => {
    const { file, holder, lock } = await heldLock();
    const t0 = performance.now();
    const [pending, line] = [lock.acquire({ timeout: 100 }), lineHere()];
    const { err, ms } = await rejection(pending, t0);
    assertTimeoutError(err, lock);
    assert.ok(
      err.stack.includes(`${__filename}:${line}:`),
      `the stack shows the acquire() line ${line}:\n${err.stack}`,
    );
    assert.ok(ms >= 95 && ms < 100 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);
    await assertNoLeak(file, holder);
  });

  it('abort rejects promptly with AbortError, cause === signal.reason, and leaks nothing', async () => {
    const { file, holder, lock } = await heldLock();
    const ac = new AbortController();
    const reason = new Error('user gave up');
    const t0 = performance.now();
    setTimeout(() => ac.abort(reason), 50);
    const { err, ms } = await rejection(lock.acquire({ signal: ac.signal }), t0);
    assertAbortError(err, lock, reason);
    assert.ok(err.stack.includes(__filename), `the stack names the caller's file:\n${err.stack}`);
    assert.ok(ms >= 45 && ms < 50 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);
    await assertNoLeak(file, holder);
  });

  it('AbortSignal.timeout() works as a signal', async () => {
    const { file, holder, lock } = await heldLock();
    const t0 = performance.now();
    const signal = AbortSignal.timeout(50);
    const { err, ms } = await rejection(lock.acquire({ signal }), t0);
    assertAbortError(err, lock, signal.reason);
    assert.equal(err.cause.name, 'TimeoutError');
    assert.ok(ms < 50 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);
    await assertNoLeak(file, holder);
  });

  it('an already-aborted signal rejects at once, with no native wait, held or free', async () => {
    const { file, holder, lock } = await heldLock();
    const free = new FileLock(path.join(dir, 'free.lock'));
    locks.push(free);
    const threads = threadCount();
    const reason = new Error('too late');
    for (const l of [lock, free]) {
      const signal = AbortSignal.abort(reason);
      let settled = false;
      const p = l.acquire({ signal }).finally(() => {
        settled = true;
      });
      await null; // one microtask turn: no timer, no native round trip
      await null;
      assert.equal(settled, true, 'rejected before any I/O could happen');
      const { err } = await rejection(p);
      assertAbortError(err, l, reason);
    }
    assert.ok(threadCount() <= threads, 'no wait thread was started');
    assert.ok(othersCanLock(free.path), 'the free lock was not taken');
    await assertNoLeak(file, holder);
  });

  it('100 timed-out waits in a row: each prompt, threads back to baseline, no leak', async () => {
    const { file, holder, lock } = await heldLock();
    let worst = 0;
    for (let i = 0; i < 100; i++) {
      const p = i % 2 ? lock.acquire({ timeout: 5 }) : lock.acquire({ signal: AbortSignal.timeout(5) });
      const { err, ms } = await rejection(p);
      assert.equal(err.code, i % 2 ? 'ETIMEDOUT' : 'ABORT_ERR');
      worst = Math.max(worst, ms);
    }
    assert.ok(worst < 5 + MARGIN, `slowest rejection took ${worst.toFixed(1)} ms`);
    assert.ok(
      await waitFor(() => threadCount() <= baseline, 3000),
      `threads back to baseline: ${threadCount()} vs ${baseline}`,
    );
    await assertNoLeak(file, holder);
  });

  it('100 queued waiters with staggered timeouts each reject on time; a waiter behind them still gets the lock', async () => {
    const { holder, lock } = await heldLock();
    const t0 = performance.now();
    const late = [];
    const waits = [];
    for (let i = 0; i < 100; i++) {
      const timeout = 10 + ((i * 37) % 100); // out of queue order, so middles and heads both cancel
      waits.push(
        lock.acquire({ timeout }).then(
          () => assert.fail('granted while flock(1) holds the lock'),
          (err) => {
            assert.equal(err.code, 'ETIMEDOUT');
            const at = performance.now() - t0;
            if (at < timeout - 2 || at > timeout + MARGIN) late.push({ timeout, at });
          },
        ),
      );
    }
    const last = lock.acquire();
    await Promise.all(waits);
    assert.deepEqual(late, [], 'every rejection within its timeout + margin');
    await holder.release();
    const h = await last;
    assert.equal(h.released, false);
    assert.equal(othersCanLock(lock.path), false, 'we hold it now');
    h.release();
    assert.ok(othersCanLock(lock.path));
  });

  it('acquireSync with a timeout throws ETIMEDOUT promptly', async () => {
    const { file, holder, lock } = await heldLock();
    const t = performance.now();
    let err;
    try {
      lock.acquireSync({ timeout: 100 });
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t;
    assertTimeoutError(err, lock);
    assert.ok(ms >= 95 && ms < 100 + MARGIN, `threw after ${ms.toFixed(1)} ms`);
    assert.ok(lock.tryAcquire() === null, 'still held by flock(1)');
    await assertNoLeak(file, holder);
  });

  it('holder releases in the same instant the timeout or abort fires: never left holding', async () => {
    // The holder is another open file description on this thread (a real
    // kernel lock), released by a timer due at the same instant as our
    // timeout or abort, so the native grant and the cancel race. A third
    // description probes the lock.
    const file = path.join(dir, 'race.lock');
    const lock = new FileLock(file);
    locks.push(lock);
    const holderFd = fs.openSync(file, 'a');
    const probeFd = fs.openSync(file, 'r');
    const probe = () => {
      const free = flockSync(probeFd, 'ex', { nonblocking: true });
      if (free) flockSync(probeFd, 'un');
      return free;
    };
    const outcomes = { granted: 0, cancelled: 0 };
    try {
      for (let i = 0; i < 200; i++) {
        assert.equal(flockSync(holderFd, 'ex', { nonblocking: true }), true, `round ${i}: free at the start`);
        const ms = 1 + (i % 3);
        let unlocked = false;
        let onUnlock;
        const unlockDone = new Promise((resolve) => {
          onUnlock = resolve;
        });
        const unlock = () => {
          flockSync(holderFd, 'un');
          unlocked = true;
          onUnlock();
        };
        let p;
        if (i % 2 === 0) {
          // Timeout: the acquire's timer and the unlock timer, in either order.
          if (i % 4 === 0) {
            p = lock.acquire({ timeout: ms });
            setTimeout(unlock, ms);
          } else {
            setTimeout(unlock, ms);
            p = lock.acquire({ timeout: ms });
          }
        } else {
          // Abort 0-80 µs after the unlock, spanning the native thread's wake-up.
          const ac = new AbortController();
          const gap = ((i * 7) % 81) * 1000;
          p = lock.acquire({ signal: ac.signal });
          setTimeout(() => {
            unlock();
            const t = process.hrtime.bigint();
            while (process.hrtime.bigint() - t < BigInt(gap));
            ac.abort();
          }, ms);
        }
        try {
          const h = await p;
          outcomes.granted++;
          assert.equal(probe(), false, 'a granted handle holds the lock');
          h.release();
          assert.equal(probe(), true, `round ${i}: released handle left the lock held`);
        } catch (err) {
          assert.ok(err.code === 'ETIMEDOUT' || err.code === 'ABORT_ERR', String(err));
          outcomes.cancelled++;
          // Checked before any other task runs: a raced grant is released before the rejection.
          if (unlocked) assert.equal(probe(), true, `round ${i}: rejected, yet the lock is held`);
        }
        await unlockDone;
        assert.equal(probe(), true, `round ${i}: lock left held after the holder let go`);
      }
    } finally {
      fs.closeSync(holderFd);
      fs.closeSync(probeFd);
    }
    assert.equal(outcomes.granted + outcomes.cancelled, 200);
    assert.ok(
      await waitFor(() => threadCount() <= baseline, 3000),
      `no wait thread left blocked: ${threadCount()} vs ${baseline}`,
    );
  });
});
