'use strict';
// Semaphore across processes and workers: N processes x M workers never hold
// more than `permits` at once (a no-semaphore control shows the witness sees
// overlaps), and the permits of a SIGKILLed process or a terminated worker,
// holding or waiting, come back at once, with ownerDied for the next holder.
const assert = require('node:assert/strict');
const { Semaphore, SharedMutex } = require('..');
const { startFixture, killChildren, sleep, waitFor } = require('./support/helpers');
const { skipUnlessOwnerDeath } = require('./support/owner-death');

const PROMPT_MS = 2000; // "at once" on a loaded 2-core machine
let seq = 0;
const fresh = (tag) => `interlock-test-semp-${process.pid}-${tag}-${seq++}`;
const unlink = (fn, name) => {
  try {
    fn(name);
  } catch {}
};

async function witnessRun(mode, permits, procs, workers, iterations, maxWeight) {
  const name = fresh('load');
  const witness = fresh('witness');
  const mem = new SharedMutex(witness, { dataSize: 8 });
  mem.data.fill(0);
  try {
    const runs = [];
    for (let p = 0; p < procs; p++) {
      const args = [name, witness, permits, iterations, workers, mode, maxWeight].map(String);
      runs.push(startFixture('semaphore-load.js', args, 'done').exited);
    }
    for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.err);
    const cells = new Int32Array(mem.data.buffer, mem.data.byteOffset, 2);
    return { inUse: cells[0], most: cells[1] };
  } finally {
    mem.close();
    unlink(SharedMutex.unlink, witness);
    unlink(Semaphore.unlink, name);
  }
}

describe('Semaphore across processes and workers', () => {
  afterEach(killChildren);

  it('3 processes x 2 threads never hold more than the permits (weights 1 to 2)', async () => {
    const { inUse, most } = await witnessRun('sem', 3, 3, 2, 40, 2);
    assert.equal(inUse, 0);
    assert.ok(most <= 3, `at most 3 permits in use, saw ${most}`);
    assert.ok(most >= 2, `the threads overlapped (saw ${most})`);
  });

  it('control: without the semaphore the witness sees more than the permits', async () => {
    const { most } = await witnessRun('none', 3, 3, 2, 40, 2);
    assert.ok(most > 3, `saw ${most}`);
  });

  // A child holding or waiting for `weight` permits; run.said(text) polls its output.
  async function holder(name, permits, weight, where) {
    const args = [name, String(permits), String(weight)];
    if (where) args.push(where);
    const run = startFixture('semaphore-hold.js', args, 'waiting');
    let out = '';
    run.child.stdout.on('data', (d) => {
      out += d;
    });
    run.said = (text) => waitFor(() => out.includes(text), 10000);
    run.output = () => out;
    await run.started;
    return run;
  }

  for (const where of ['process', 'worker']) {
    it(`permits of a ${where === 'process' ? 'SIGKILLed process' : 'terminated worker'} come back at once, with ownerDied`, async function () {
      if (where === 'process') await skipUnlessOwnerDeath(this); // skipped under qemu-user (no set_robust_list); says why
      const name = fresh(`death-${where}`);
      const s = new Semaphore(name, { permits: 3 });
      try {
        const run = await holder(name, 3, 2, where === 'worker' ? 'worker' : undefined);
        assert.ok(await run.said('held false'), run.output());
        assert.equal(s.info().available, 1);
        assert.deepEqual(
          s.info().holders.map((h) => [h.pid, h.weight]),
          [[run.child.pid, 2]],
        );
        const waiting = s.acquire({ weight: 3 });
        await sleep(20);
        const t0 = Date.now();
        if (where === 'process') run.child.kill('SIGKILL');
        else run.child.stdin.write('terminate\n');
        const h = await waiting;
        assert.ok(Date.now() - t0 < PROMPT_MS, `granted ${Date.now() - t0} ms after the death`);
        assert.equal(h.ownerDied, true);
        h.release();
        const next = s.tryAcquire({ weight: 3 });
        assert.equal(next.ownerDied, false, 'a death is reported once');
        next.release();
        assert.deepEqual(s.info().holders, []);
      } finally {
        s.close();
        unlink(Semaphore.unlink, name);
      }
    });

    it(`a ${where === 'process' ? 'SIGKILLed' : 'terminated'} waiter leaves no permit taken and no gate shut`, async () => {
      const name = fresh(`waiter-${where}`);
      const s = new Semaphore(name, { permits: 2 });
      try {
        const held = s.tryAcquire();
        // A heavy waiter shuts the gate while it waits.
        const run = await holder(name, 2, 2, where === 'worker' ? 'worker' : undefined);
        // Its wait thread shuts the gate soon after 'waiting' (later on a loaded machine).
        const shut = await waitFor(() => {
          const h = s.tryAcquire();
          h?.release();
          return h === null;
        }, 10000);
        assert.ok(shut, 'the heavy waiter shut the gate');
        if (where === 'process') run.child.kill('SIGKILL');
        else run.child.stdin.write('terminate\n');
        const t0 = Date.now();
        const h = await waitFor(() => s.tryAcquire(), PROMPT_MS);
        assert.ok(h, `the gate opened again within ${Date.now() - t0} ms`);
        h.release();
        held.release();
        assert.equal(s.info().available, 2);
      } finally {
        s.close();
        unlink(Semaphore.unlink, name);
      }
    });
  }
});
