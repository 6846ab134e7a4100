'use strict';
// Owner death: a holder that is SIGKILLed or whose worker is terminated
// hands the next acquirer ownerDied: true (and only the next one), whether it
// held on its JS thread (sync, fast path) or through a parked native thread
// (contended async). A worker terminated while waiting leaks nothing.
const { skipUnlessOwnerDeath } = require('./support/owner-death');
const assert = require('node:assert/strict');
const { SharedMutex } = require('..');
const { killChildren, settledThreadCount, threadCount, fdCount, waitFor, sleep, within } = require('./support/helpers');
const { uniqueName, cleanupNames, holderProcess, holderWorker, expectTag } = require('./fixtures/mutex-driver');

describe('SharedMutex owner death', function () {
  this.timeout(15000);
  const opened = [];
  const open = (name) => {
    const m = new SharedMutex(name, { dataSize: 8 });
    opened.push(m);
    return m;
  };

  afterEach(() => {
    for (const m of opened.splice(0)) m.close();
    killChildren();
  });
  after(cleanupNames);

  /** The acquisition after `first`: no news any more, a larger token. */
  async function assertNewsGone(m, first) {
    first.release();
    const second = await m.acquire({ timeout: 5000 });
    assert.equal(second.ownerDied, false, 'a clean release clears the news');
    assert.ok(second.token > first.token);
    second.release();
    const third = m.acquireSync({ timeout: 5000 });
    assert.equal(third.ownerDied, false);
    third.release();
  }

  /**
   * Runs `die` and checks that the next acquirer, who came after the death
   * (`after`) or was already waiting in a native thread (`waiting`), hears of
   * it; and that the one after that does not.
   */
  async function assertDeathReportedOnce(m, next, die) {
    let first;
    if (next === 'waiting') {
      const pending = m.acquire({ timeout: 5000 });
      await sleep(30); // its native wait is blocked in the kernel now
      await die();
      first = await pending;
    } else {
      await die();
      first = await m.acquire({ timeout: 5000 });
    }
    assert.equal(first.ownerDied, true, 'the next acquirer hears that the holder died');
    await assertNewsGone(m, first);
  }

  /** Has `holder` (already told to open `name`) take `m` through a parked native thread. */
  async function holdContended(m, holder) {
    const ours = m.acquireSync({ timeout: 5000 });
    await holder.do('wait-async', 'waiting');
    await sleep(30); // let its native wait block in the kernel
    ours.release();
    const held = expectTag(await holder.next('held'), 'held');
    assert.notEqual(held.holderTid, held.tid, 'held by a parked native thread, not by the JS thread');
    return held;
  }

  for (const how of ['sync', 'contended async']) {
    for (const next of ['after', 'waiting']) {
      it(`SIGKILL of a process holding it (${how}) → ownerDied: true once (next acquirer ${next})`, async function () {
        await skipUnlessOwnerDeath(this); // not applicable under qemu-user (no set_robust_list); says why
        const name = uniqueName('kill');
        const m = open(name);
        const holder = await holderProcess();
        await holder.do(`open ${name} 8`, 'opened');
        const held = how === 'sync' ? await holder.do('sync', 'held') : await holdContended(m, holder);
        if (how === 'sync') assert.equal(held.holderTid, held.tid, 'held on its JS thread');
        assert.equal(held.ownerDied, false);
        assert.equal(m.info().holderPid, holder.pid);
        assert.equal(m.tryAcquire(), null, 'held by the child');
        await assertDeathReportedOnce(m, next, async () => {
          const { signal } = await holder.kill();
          assert.equal(signal, 'SIGKILL');
        });
      });
    }
  }

  for (const how of ['sync', 'contended async']) {
    for (const next of ['after', 'waiting']) {
      it(`terminate() of a worker holding it (${how}) → ownerDied: true once (next acquirer ${next})`, async () => {
        const name = uniqueName('term');
        const m = open(name);
        const holder = await holderWorker();
        await holder.do(`open ${name} 8`, 'opened');
        const held = how === 'sync' ? await holder.do('sync', 'held') : await holdContended(m, holder);
        if (how === 'sync') assert.equal(held.holderTid, held.tid, 'held on its JS thread');
        assert.equal(m.tryAcquire(), null, 'held by the worker');
        await assertDeathReportedOnce(m, next, () => within(holder.worker.terminate(), 5000, 'terminate()'));
      });
    }
  }

  it('acquireSync blocked on a holder that is SIGKILLed returns with ownerDied: true', async function () {
    await skipUnlessOwnerDeath(this); // not applicable under qemu-user (no set_robust_list); says why
    const name = uniqueName('killsync');
    const m = open(name);
    const holder = await holderProcess();
    await holder.do(`open ${name} 8`, 'opened');
    await holder.do('sync', 'held');
    await holder.do('die-after 100', 'dying');
    const t = performance.now();
    const first = m.acquireSync({ timeout: 5000 }); // blocks this thread until the death
    const ms = performance.now() - t;
    assert.equal(first.ownerDied, true);
    assert.ok(ms > 50 && ms < 3000, `granted ${ms.toFixed(0)} ms after blocking`);
    await assertNewsGone(m, first);
  });

  it('a worker that closes its mutex cleanly before exiting leaves no death news', async () => {
    const name = uniqueName('clean');
    const m = open(name);
    const holder = await holderWorker();
    await holder.do(`open ${name} 8`, 'opened');
    await holder.do('sync', 'held');
    await holder.do('close', 'closed'); // close() releases what it holds, cleanly
    await within(holder.worker.terminate(), 5000, 'terminate()');
    const h = await m.acquire({ timeout: 5000 });
    assert.equal(h.ownerDied, false);
    h.release();
  });

  it('terminate() of a worker waiting for it: no hang, no leaked thread or fd, usable after', async () => {
    const name = uniqueName('waiter');
    const m = open(name);
    const threads = await settledThreadCount();
    const fds = fdCount();
    const ours = m.acquireSync();
    const waiters = [];
    for (let i = 0; i < 3; i++) {
      const w = await holderWorker();
      await w.do(`open ${name} 8`, 'opened');
      await w.do('wait-async', 'waiting');
      waiters.push(w);
    }
    await sleep(30); // the waits are blocked in the kernel now
    await within(Promise.all(waiters.map((w) => w.worker.terminate())), 5000, 'terminate() of waiting workers');
    if (process.versions.deno) {
      // Deno's terminate() resolves before the worker has stopped: released
      // now, a dying waiter could still be granted it. Gone means its threads are.
      await waitFor(() => threadCount() <= threads, 5000);
    }
    assert.equal(m.info().holderPid, process.pid, 'we still hold it');
    ours.release();
    await sleep(20);
    // Nobody grabbed it on the way out: another process takes it at once.
    const prober = await holderProcess();
    await prober.do(`open ${name} 8`, 'opened');
    const probe = await prober.do('try', 'try');
    assert.equal(probe.ok, true, 'another process can take it');
    assert.equal(probe.ownerDied, false, 'the waiters never held it');
    await prober.do('release', 'released');
    await prober.end();
    const h = await m.acquire({ timeout: 2000 });
    assert.equal(h.ownerDied, false);
    h.release();
    assert.ok(
      await waitFor(() => threadCount() <= threads, 5000),
      `threads back to baseline: ${threadCount()} vs ${threads}`,
    );
    assert.ok(await waitFor(() => fdCount() <= fds, 2000), `fds back to baseline: ${fdCount()} vs ${fds}`);
  });
});
