'use strict';
// The demo's experiment as a test: processes × worker threads × async tasks
// increment one counter file (read → ~1 ms pause → write) through FileLock.
// Every update must land; the same run with no lock must lose some.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, startFixture, killChildren } = require('./support/helpers');

/** Runs `processes` counter fixtures from one start line; returns the total. */
async function runCounter({ processes, workers, tasks = 1, n, modes }) {
  const dir = tmpDir('interlock-counter-');
  const lockPath = path.join(dir, 'counter.lock');
  const counter = path.join(dir, 'counter');
  fs.writeFileSync(counter, '00000000');
  const args = [lockPath, counter, modes, String(workers), String(tasks), String(n)];
  const kids = Array.from({ length: processes }, () => startFixture('counter.js', args, 'ready'));
  await Promise.all(kids.map((k) => k.started));
  const t0 = Date.now();
  for (const k of kids) k.child.stdin.write('go\n');
  const results = await Promise.all(kids.map((k) => k.exited));
  const ms = Date.now() - t0;
  for (const r of results) assert.equal(r.code, 0, `counter fixture failed: ${r.out}${r.err}`);
  return { total: Number(fs.readFileSync(counter, 'utf8')), expected: processes * workers * tasks * n, ms };
}

describe('counter: processes × worker threads × async tasks', function () {
  this.timeout(20000);
  afterEach(killChildren);

  it('async API (run): 4 processes × 4 workers, exact total', async () => {
    const { total, expected } = await runCounter({ processes: 4, workers: 4, n: 8, modes: 'async' });
    assert.equal(total, expected);
  });

  it('sync API (runSync): 4 processes × 4 workers, exact total', async () => {
    const { total, expected } = await runCounter({ processes: 4, workers: 4, n: 8, modes: 'sync' });
    assert.equal(total, expected);
  });

  it('async tasks in one thread: 2 processes × 2 workers × 4 concurrent loops, exact total', async () => {
    const { total, expected } = await runCounter({ processes: 2, workers: 2, tasks: 4, n: 6, modes: 'async' });
    assert.equal(total, expected);
  });

  it('sync and async users of one lock mixed in each process, exact total', async () => {
    const { total, expected } = await runCounter({ processes: 2, workers: 4, tasks: 2, n: 6, modes: 'async,sync' });
    // sync workers ignore `tasks`: two of four workers run 2 loops, two run 1.
    assert.equal(total, (expected * 3) / 4);
  });

  // Controls: the same shapes with no lock lose updates, so the race is real
  // and the exact totals above are the lock's doing.
  it('control: async with no lock loses updates', async () => {
    const { total, expected } = await runCounter({ processes: 4, workers: 4, n: 8, modes: 'async-none' });
    assert.ok(total < expected, `no lock yet ${total} of ${expected}: the race did not happen`);
  });

  it('control: sync with no lock loses updates', async () => {
    const { total, expected } = await runCounter({ processes: 4, workers: 4, n: 8, modes: 'sync-none' });
    assert.ok(total < expected, `no lock yet ${total} of ${expected}: the race did not happen`);
  });
});
