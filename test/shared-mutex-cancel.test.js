'use strict';
// SharedMutex timeout and abort: prompt, typed rejections that leak no
// grant (another process takes the mutex right after its holder leaves) and
// no native thread (thread count back to baseline after 100 cancelled waits).
const assert = require('node:assert/strict');
const { SharedMutex, LockError, AbortError } = require('..');
const { killChildren, settledThreadCount, threadCount, waitFor, sleep } = require('./support/helpers');
const { uniqueName, cleanupNames, holderProcess } = require('./fixtures/mutex-driver');

const MARGIN = 400; // ms of scheduling slack: CI reruns this file inside a Worker under Bun and Deno on a loaded 2-core VM

/** The rejection of the promise `start()` returns, and how long it took from the call, in ms. */
async function rejection(start) {
  const t = performance.now();
  try {
    await start();
  } catch (err) {
    return { err, ms: performance.now() - t };
  }
  assert.fail('expected a rejection');
}

describe('SharedMutex timeout and abort', function () {
  this.timeout(20000);
  let name;
  let m;
  let holder;
  let baseline;

  before(async () => {
    baseline = await settledThreadCount();
    name = uniqueName('cancel');
    m = new SharedMutex(name);
    holder = await holderProcess();
    await holder.do(`open ${name} 0`, 'opened');
  });

  beforeEach(async () => {
    const held = await holder.do('sync', 'held');
    assert.equal(held.ownerDied, false, 'no earlier test left death news');
  });

  afterEach(async () => {
    await holder.do('release', 'released');
  });

  after(() => {
    m?.close();
    killChildren();
    cleanupNames();
  });

  /**
   * The holder lets go; a leaked wait of ours would take the mutex within a
   * 2 ms slice. After a pause, the holder (another process) must get it back.
   */
  async function assertNoLeak() {
    await holder.do('release', 'released');
    await sleep(30);
    assert.notEqual(m.info().holderPid, process.pid, 'no grant of ours holds it');
    const probe = await holder.do('try', 'try');
    assert.equal(probe.ok, true, 'another process takes it right after the holder left');
  }

  function assertLockError(err, code) {
    assert.ok(err instanceof LockError, `LockError, got ${err}`);
    assert.equal(err.code, code);
    assert.equal(err.path, `/dev/shm/${name}`);
  }

  it('timeout rejects promptly with ETIMEDOUT and leaks no grant', async () => {
    const { err, ms } = await rejection(() => m.acquire({ timeout: 100 }));
    assertLockError(err, 'ETIMEDOUT');
    assert.equal(err.errno, -110);
    assert.ok(err.stack.includes(__filename), `the stack names the caller:\n${err.stack}`);
    assert.ok(ms >= 95 && ms < 100 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);
    await assertNoLeak();
  });

  it('abort rejects promptly with AbortError (cause = signal.reason) and leaks no grant', async () => {
    const ac = new AbortController();
    const reason = new Error('user gave up');
    const { err, ms } = await rejection(() => {
      setTimeout(() => ac.abort(reason), 50);
      return m.acquire({ signal: ac.signal });
    });
    assert.ok(err instanceof AbortError, `AbortError, got ${err}`);
    assertLockError(err, 'ABORT_ERR');
    assert.equal(err.cause, reason);
    assert.ok(ms >= 45 && ms < 50 + MARGIN, `rejected after ${ms.toFixed(1)} ms`);
    await assertNoLeak();
  });

  it('an already-aborted signal rejects at once, held or free, and takes nothing', async () => {
    const free = new SharedMutex(uniqueName('free'));
    try {
      const threads = threadCount();
      const reason = new Error('too late');
      for (const target of [m, free]) {
        let settled = false;
        const p = target.acquire({ signal: AbortSignal.abort(reason) }).finally(() => {
          settled = true;
        });
        await null; // a microtask turn or two: no timer, no native round trip
        await null;
        assert.equal(settled, true, 'rejected before any wait could start');
        const { err } = await rejection(() => p);
        assert.ok(err instanceof AbortError);
        assert.equal(err.cause, reason);
      }
      assert.ok(threadCount() <= threads, 'no wait thread was started');
      assert.equal(free.info().holderPid, 0, 'the free mutex was not taken');
      assert.equal(free.info().token, 0n, 'nor ever acquired');
    } finally {
      free.close();
    }
    await assertNoLeak();
  });

  it('acquireSync with a timeout throws ETIMEDOUT promptly', async () => {
    const t = performance.now();
    let err;
    try {
      m.acquireSync({ timeout: 100 });
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t;
    assertLockError(err, 'ETIMEDOUT');
    assert.ok(ms >= 95 && ms < 100 + MARGIN, `threw after ${ms.toFixed(1)} ms`);
    await assertNoLeak();
  });

  it('100 cancelled waits in a row: each prompt, threads back to baseline, no leaked grant', async () => {
    const times = [];
    for (let i = 0; i < 100; i++) {
      const p = () => (i % 2 ? m.acquire({ timeout: 5 }) : m.acquire({ signal: AbortSignal.timeout(5) }));
      const { err, ms } = await rejection(p);
      assert.equal(err.code, i % 2 ? 'ETIMEDOUT' : 'ABORT_ERR');
      times.push(ms);
    }
    // A loaded VM may stall any one of them; most must be prompt, none slow.
    times.sort((a, b) => a - b);
    const [p95, worst] = [times[94], times[99]];
    assert.ok(p95 < 5 + MARGIN, `95th percentile ${p95.toFixed(1)} ms`);
    assert.ok(worst < 5 + 4 * MARGIN, `slowest rejection took ${worst.toFixed(1)} ms`);
    // Wait threads linger ~200 ms after their last wait, then exit.
    assert.ok(
      await waitFor(() => threadCount() <= baseline, 3000),
      `threads back to baseline: ${threadCount()} vs ${baseline}`,
    );
    await assertNoLeak();
  });

  it('many queued waits with staggered timeouts each reject on time; one behind them gets the mutex', async () => {
    const t0 = performance.now();
    const late = [];
    const waits = [];
    for (let i = 0; i < 30; i++) {
      const timeout = 10 + ((i * 37) % 100); // out of queue order: heads and middles both cancel
      waits.push(
        m.acquire({ timeout }).then(
          () => assert.fail('granted while another process holds it'),
          (err) => {
            assert.equal(err.code, 'ETIMEDOUT');
            const at = performance.now() - t0;
            if (at < timeout - 2 || at > timeout + MARGIN) late.push({ timeout, at });
          },
        ),
      );
    }
    const last = m.acquire({ timeout: 5000 });
    await Promise.all(waits);
    assert.deepEqual(late, [], 'every rejection within its timeout + margin');
    await holder.do('release', 'released');
    const h = await last;
    assert.equal(h.ownerDied, false);
    assert.equal(m.info().holderPid, process.pid);
    h.release();
    const probe = await holder.do('try', 'try'); // re-held for afterEach
    assert.equal(probe.ok, true);
  });

  it('close() while an acquire waits: it rejects with ERR_LOCK_CLOSED and leaks no grant', async () => {
    const other = new SharedMutex(name); // its own instance, so `m` stays open for the rest
    const pending = other.acquire();
    await sleep(30); // waiting natively now
    other.close();
    const err = await pending.then(
      () => assert.fail('granted'),
      (e) => e,
    );
    assert.ok(err instanceof LockError, `LockError, got ${err}`);
    assert.equal(err.code, 'ERR_LOCK_CLOSED');
    await assertNoLeak();
  });

  it('close() while a parked thread holds for us: released cleanly, another process takes it at once', async () => {
    const other = new SharedMutex(name);
    const pending = other.acquire({ timeout: 5000 });
    await sleep(30);
    await holder.do('release', 'released');
    const h = await pending; // contended: won by a parked native thread
    assert.notEqual(m.info().holderTid, process.pid, 'not held by the JS thread');
    other.close();
    assert.equal(h.released, true);
    const probe = await holder.do('try', 'try');
    assert.equal(probe.ok, true, 'another process takes it right after close()');
    assert.equal(probe.ownerDied, false, 'close() is a clean release');
  });

  it('holder lets go in the same instant the timeout fires: either granted or rejected, never leaked', async () => {
    await holder.do('release', 'released');
    const outcomes = { granted: 0, rejected: 0 };
    for (let i = 0; i < 16; i++) {
      const ms = 20 + (i % 4); // the holder's release and our timeout land together
      holder.send(`hold-for ${ms}`);
      await holder.next('held');
      try {
        const h = await m.acquire({ timeout: ms });
        outcomes.granted++;
        h.release();
      } catch (err) {
        assert.equal(err.code, 'ETIMEDOUT');
        outcomes.rejected++;
      }
      await holder.next('released');
      await sleep(5);
      assert.notEqual(m.info().holderPid, process.pid, `round ${i}: no grant of ours is left holding it`);
      const h = m.tryAcquire();
      assert.ok(h !== null, `round ${i}: free for this thread again`);
      h.release();
    }
    assert.equal(outcomes.granted + outcomes.rejected, 16);
    await holder.do('sync', 'held'); // for afterEach
  });
});
