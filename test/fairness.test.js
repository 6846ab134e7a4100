'use strict';
// Handoff mode (issue 14). A barger in another process releases the lock and
// takes it straight back; the waiter (another process) is SIGSTOPped over
// every release, so it can never win a race for the free lock: only a lock
// that makes the barger wait for it lets it in. Nothing here asserts timing:
// the bound is in the barger's rounds, which the test itself hands out.
// (A stop takes a waiter out of the kernel's own queues, so this is also the
// shape of a waiter that was merely slow to be scheduled.)
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { FileLock, SharedMutex, Semaphore } = require('..');
const {
  holdFlock,
  killChildren,
  startFixture,
  sleep,
  tmpDir,
  waitFor,
  within,
  unlinkSemaphores,
} = require('./support/helpers');
const { uniqueName, cleanupNames } = require('./fixtures/mutex-driver');
const { openBoard } = require('./fixtures/fair-board');

// With handoff the waiter, once starving (~1 ms), is let in at the next
// round; the rest is room for a loaded machine. Without, it never is.
const ROUNDS = 20;

/** Resolves once `child` has printed `text` (from now on). */
function said(child, text) {
  let out = '';
  return new Promise((resolve) =>
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes(text)) resolve(out);
    }),
  );
}

/**
 * Resolves once every thread of `pid` is stopped (state T in /proc). Not
 * just the main thread: a wait thread still on its way to the stop can be
 * granted a lock released meanwhile, and then stop holding it.
 */
async function stopped(pid) {
  const state = (task) => {
    try {
      return fs.readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8').replace(/^.*\)/, ' ');
    } catch {
      return ' T '; // the thread has exited meanwhile: it holds nothing
    }
  };
  const ok = await waitFor(() => fs.readdirSync(`/proc/${pid}/task`).every((task) => / T /.test(state(task))));
  assert.ok(ok, `process ${pid} did not stop`);
}

/** Whether a starving waiter's turn is pending on `lock` (a FileLock: in its file's marks). */
function handoff(lock) {
  return lock instanceof FileLock ? FileLock.status(lock.path).handoff : lock.info().handoff;
}

/** Turns taken so far on `lock`. */
function handoffs(lock) {
  return lock instanceof FileLock ? FileLock.status(lock.path).handoffs : lock.info().handoffs;
}

/** A FileLock on a fresh file (its `name` for the fixtures is the path). */
function freshFileLock(label) {
  return new FileLock(path.join(tmpDir('interlock-fair-'), `${label}.lock`));
}

/**
 * kind: 'mutex' | 'semaphore' | 'file'. `lock` is this process's view of the
 * same lock, used only to read info() or status(). Returns the round at which the waiter got
 * the lock (0: never within ROUNDS).
 */
async function barge(kind, name, lock, { stop = true, waiterArgs = [] } = {}) {
  const boardName = uniqueName('board');
  const { board, cells } = openBoard(boardName);
  try {
    const barger = startFixture('barger.js', [kind, name, boardName], 'ready');
    await barger.started;
    const waiter = startFixture('fair-waiter.js', [kind, name, boardName, ...waiterArgs], 'waiting');
    await waiter.started;
    const pid = waiter.child.pid;
    // Someone other than the barger has the lock: its re-take is waiting.
    const barred = kind === 'semaphore' ? () => lock.info().available === 0 : () => handoff(lock) === true;
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        await sleep(5); // the waiter runs: long enough to turn starving
        if (stop) {
          process.kill(pid, 'SIGSTOP');
          await stopped(pid);
        }
        Atomics.store(cells, 0, round);
        // Until the barger has the lock again, or is held back for the waiter.
        const held = await waitFor(
          () => Atomics.load(cells, 2) >= round || (Atomics.load(cells, 1) >= round && barred()),
        );
        assert.ok(held, `round ${round}: the barger neither re-took the lock nor was held back`);
        if (stop) process.kill(pid, 'SIGCONT');
        const after = await waitFor(() => Atomics.load(cells, 4) === 1 || Atomics.load(cells, 2) >= round);
        assert.ok(after, `round ${round}: neither the waiter nor the barger got the lock`);
        if (Atomics.load(cells, 4) === 1) return round;
      }
      return 0;
    } finally {
      process.kill(pid, 'SIGCONT');
      Atomics.store(cells, 3, 1);
    }
  } finally {
    board.close();
  }
}

describe('handoff mode: a barger in another process cannot starve a waiter', function () {
  this.timeout(30000);
  afterEach(killChildren);
  after(cleanupNames);

  // Fails before handoff mode: the barger re-took the lock at every round.
  it('SharedMutex: the waiter gets the lock within a few rounds; info() counts the handoff', async () => {
    const name = uniqueName('barged');
    const m = new SharedMutex(name);
    try {
      const round = await barge('mutex', name, m);
      assert.ok(round > 0, `the waiter never got the lock in ${ROUNDS} rounds of the barger`);
      assert.ok(m.info().handoffs >= 1, 'a turn was counted');
    } finally {
      m.close();
    }
  });

  // Fails before handoff mode, as above. A sync wait is another path: it
  // runs on the JS thread in slices, each a new call into the lock.
  it('SharedMutex, the waiter blocked in acquireSync(): the same bound', async () => {
    const name = uniqueName('barged-sync');
    const m = new SharedMutex(name);
    try {
      const round = await barge('mutex', name, m, { waiterArgs: ['sync'] });
      assert.ok(round > 0, `the waiter never got the lock in ${ROUNDS} rounds of the barger`);
    } finally {
      m.close();
    }
  });

  // Fails before FileLock turns: flock(2) wakes the waiter, but the barger,
  // already running, takes the lock back first at every round.
  it('FileLock: the waiter gets the lock within a few rounds; FileLock.status() counts the handoff', async () => {
    const lock = freshFileLock('barged');
    try {
      const round = await barge('file', lock.path, lock);
      assert.ok(round > 0, `the waiter never got the lock in ${ROUNDS} rounds of the barger`);
      assert.ok(handoffs(lock) >= 1, 'a turn was counted');
    } finally {
      lock.close();
    }
  });

  // Fails before FileLock turns, as above; the sync wait runs in slices.
  it('FileLock, the waiter blocked in acquireSync(): the same bound', async () => {
    const lock = freshFileLock('barged-sync');
    try {
      const round = await barge('file', lock.path, lock, { waiterArgs: ['sync'] });
      assert.ok(round > 0, `the waiter never got the lock in ${ROUNDS} rounds of the barger`);
    } finally {
      lock.close();
    }
  });

  // Not a regression test: the kernel already queues semop waiters in order
  // and gives a released permit to the queued waiter before the barger's
  // re-take (passes before handoff mode too). Unstopped: a stop takes the
  // waiter out of that queue, and a Semaphore has no turns of its own.
  it('Semaphore (1 permit): the waiter gets the permit within a few rounds; info() counts it', async () => {
    const name = uniqueName('sem-barged');
    const s = new Semaphore(name, { permits: 1 });
    try {
      const round = await barge('semaphore', name, s, { stop: false });
      assert.ok(round > 0, `the waiter never got the permit in ${ROUNDS} rounds of the barger`);
      assert.ok(s.info().handoffs >= 1, 'the grant to the queued waiter was counted');
    } finally {
      s.close();
      unlinkSemaphores([name]);
    }
  });
});

// Each kind with turns: how to make one, and its name for the fixtures.
const TURN_KINDS = [
  { label: 'SharedMutex', kind: 'mutex', make: (label) => new SharedMutex(uniqueName(label)), name: (m) => m.name },
  { label: 'FileLock', kind: 'file', make: freshFileLock, name: (l) => l.path },
];

for (const { label, kind, make, name } of TURN_KINDS) {
  describe(`handoff mode, ${label}: a starving waiter that goes away never wedges the lock`, function () {
    this.timeout(30000);
    afterEach(killChildren);
    after(cleanupNames);

    /** This process holds `m`; a waiter process starts and turns starving. */
    async function starvingWaiter(m, giveUp = []) {
      const boardName = uniqueName('board');
      const { board } = openBoard(boardName);
      board.close();
      const waiter = startFixture('fair-waiter.js', [kind, name(m), boardName, ...giveUp], 'waiting');
      await waiter.started;
      assert.ok(await waitFor(() => handoff(m)), 'the waiter took a turn');
      return waiter;
    }

    /** The turn is gone while we still hold; after release we get the lock back at once. */
    async function assertNotWedged(m, held) {
      assert.equal(handoff(m), false, 'no turn left pending');
      held.release();
      const again = m.acquireSync({ timeout: 10000 });
      again.release();
    }

    for (const how of ['timeout', 'abort']) {
      it(`one that gives up (${how}) ends its turn at once`, async () => {
        const m = make(`gives-up-${how}`);
        try {
          const held = m.acquireSync();
          const waiter = await starvingWaiter(m, [`${how}=300`]);
          await within(said(waiter.child, 'error'), 15000, 'the waiter gave up');
          await assertNotWedged(m, held);
        } finally {
          m.close();
        }
      });
    }

    // A pending turn bars tryAcquire() too (no barging), so a turn nobody will
    // take must not bar it for ever: the fuzzer found that only waiters looked.
    const takers = {
      'the next acquirer': (m) => m.acquireSync({ timeout: 10000 }),
      'tryAcquire()': (m) => waitFor(() => m.tryAcquire(), 10000),
    };

    for (const [who, take] of Object.entries(takers)) {
      it(`one SIGKILLed: ${who} finds its turn stale`, async () => {
        const m = make('killed');
        try {
          const held = m.acquireSync();
          const waiter = await starvingWaiter(m);
          waiter.child.kill('SIGKILL');
          await waiter.exited;
          assert.equal(handoff(m), true, 'the dead waiter left its turn behind');
          held.release();
          const again = await take(m);
          assert.ok(again, 'granted within 10 s');
          assert.equal(handoff(m), false, 'the stale turn was ended');
          again.release();
        } finally {
          m.close();
        }
      });

      it(`one SIGSTOPped: the turn expires once the lock has been free a while (${who})`, async () => {
        const m = make('stopped');
        try {
          const held = m.acquireSync();
          const waiter = await starvingWaiter(m);
          process.kill(waiter.child.pid, 'SIGSTOP');
          await stopped(waiter.child.pid);
          held.release();
          const again = await take(m);
          assert.ok(again, 'granted within 10 s');
          assert.equal(handoff(m), false, 'the stopped waiter lost its turn');
          again.release();
          process.kill(waiter.child.pid, 'SIGCONT');
        } finally {
          m.close();
        }
      });
    }

    it('one in a worker that is terminated ends its turn', async () => {
      const m = make('terminated');
      try {
        const held = m.acquireSync();
        const worker = new Worker(path.join(__dirname, 'fixtures', 'fair-worker.js'), {
          workerData: { kind, name: name(m) },
        });
        await new Promise((resolve) => worker.once('message', resolve));
        assert.ok(await waitFor(() => handoff(m)), 'the worker took a turn');
        await worker.terminate();
        // Deno's terminate() resolves before the worker has stopped (README,
        // Runtimes): the addon's cleanup hook ends the turn when it has.
        if (process.versions.deno) await waitFor(() => !handoff(m), 5000);
        await assertNotWedged(m, held);
      } finally {
        m.close();
      }
    });
  });
}

// flock(1) cannot be asked to step aside, and releases without telling the
// marks: a turn must neither keep its waiter from a lock flock(1) lets go nor
// outlive a waiter that cannot take it.
describe('handoff mode, FileLock: a turn pending while flock(1) holds the file', function () {
  this.timeout(30000);
  afterEach(killChildren);
  after(cleanupNames);

  async function starvingBehindFlock(lock) {
    const holder = await holdFlock(lock.path);
    const boardName = uniqueName('board');
    const { board } = openBoard(boardName);
    board.close();
    const waiter = startFixture('fair-waiter.js', ['file', lock.path, boardName], 'waiting');
    await waiter.started;
    assert.ok(await waitFor(() => handoff(lock)), 'the waiter took a turn');
    return { holder, waiter };
  }

  it('flock(1) lets go: the waiter with the turn gets the lock', async () => {
    const lock = freshFileLock('behind-flock');
    try {
      const { holder, waiter } = await starvingBehindFlock(lock);
      const granted = said(waiter.child, 'granted');
      await holder.release();
      await within(granted, 15000, 'the waiter got the lock');
      assert.equal(handoff(lock), false, 'its turn ended');
    } finally {
      lock.close();
    }
  });

  it('flock(1) lets go while the waiter is stopped: the turn expires, the next acquirer gets the lock', async () => {
    const lock = freshFileLock('behind-flock-stopped');
    try {
      const { holder, waiter } = await starvingBehindFlock(lock);
      process.kill(waiter.child.pid, 'SIGSTOP');
      await stopped(waiter.child.pid);
      await holder.release();
      const again = lock.acquireSync({ timeout: 10000 });
      assert.equal(handoff(lock), false, 'the stopped waiter lost its turn');
      again.release();
      process.kill(waiter.child.pid, 'SIGCONT');
    } finally {
      lock.close();
    }
  });
});
