'use strict';
// SharedMutex across processes and worker threads: 4 processes × 4 workers
// increment a counter in `data` with a pause between read and write, exact
// with the mutex (sync and async API), lossy without it; fencing tokens
// strictly increase across all of them; 16 processes creating one new region
// at once initialise it exactly once.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FileLock, SharedMutex } = require('..');
const { killChildren, tmpDir, sleep } = require('./support/helpers');
const { uniqueName, cleanupNames, startReporting } = require('./fixtures/mutex-driver');

/** Parses the `<tag> <json>` line a fixture printed. */
function answer(out, tag) {
  const line = out.split('\n').find((l) => l.startsWith(`${tag} `));
  assert.ok(line, `no '${tag}' line in: ${out}`);
  return JSON.parse(line.slice(tag.length + 1));
}

/** Runs `processes` mutex-counter.js fixtures from one start line. */
async function runCounter({ processes = 4, workers = 4, n, modes }) {
  const name = uniqueName('counter');
  const m = new SharedMutex(name, { dataSize: 64 });
  try {
    const args = [name, modes, String(workers), String(n)];
    const kids = Array.from({ length: processes }, () => startReporting('mutex-counter.js', args));
    await Promise.all(kids.map((k) => k.started));
    for (const k of kids) k.child.stdin.write('go\n');
    const results = await Promise.all(kids.map((k) => k.closed));
    const done = results.map((r) => {
      assert.equal(r.code, 0, `counter fixture failed: ${r.out}${r.err}`);
      return answer(r.out, 'done');
    });
    return {
      total: m.data.readUInt32LE(0),
      expected: processes * workers * n,
      tokens: done.flatMap((d) => d.tokens).map(BigInt),
      violations: done.flatMap((d) => d.violations),
      lastToken: m.data.readBigUInt64LE(8),
      headerToken: m.info().token,
    };
  } finally {
    m.close();
  }
}

/** Every acquisition got its own token, from one gap-free increasing sequence. */
function assertTokens(r) {
  assert.deepEqual(r.violations, [], 'each holder saw a larger token than the one before it');
  const sorted = [...r.tokens].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  assert.equal(new Set(sorted).size, r.expected, 'one distinct token per acquisition');
  assert.equal(sorted[0], 1n);
  assert.equal(sorted[sorted.length - 1], BigInt(r.expected), 'no gaps: 1..N');
  assert.equal(r.lastToken, BigInt(r.expected), 'the last holder wrote the largest token');
  assert.equal(r.headerToken, BigInt(r.expected));
}

describe('SharedMutex: 4 processes × 4 worker threads on one counter in data', function () {
  this.timeout(30000);
  afterEach(killChildren);
  after(cleanupNames);

  it('sync API (acquireSync, runSync): exact total, tokens strictly increasing', async () => {
    const r = await runCounter({ n: 60, modes: 'sync' });
    assert.equal(r.total, r.expected);
    assertTokens(r);
  });

  it('async API (acquire, run): exact total, tokens strictly increasing', async () => {
    const r = await runCounter({ n: 40, modes: 'async' });
    assert.equal(r.total, r.expected);
    assertTokens(r);
  });

  // The control: the same read → pause → write with no mutex loses updates,
  // so the race is real and the exact totals above are the mutex's doing.
  it('control: sync and async with no mutex lose updates', async () => {
    const r = await runCounter({ n: 40, modes: 'sync-none,async-none' });
    assert.ok(r.total < r.expected, `no mutex yet ${r.total} of ${r.expected}: the race did not happen`);
  });
});

describe('SharedMutex: 16 processes open one new name at once', function () {
  this.timeout(30000);
  afterEach(killChildren);
  after(cleanupNames);

  it('exactly one initialises; nobody sees a half-made region; all agree on data', async () => {
    const name = uniqueName('race');
    const dataSize = 4096;
    assert.equal(fs.existsSync(`/dev/shm/${name}`), false, 'the name is new');
    const barrier = new FileLock(path.join(tmpDir(), 'barrier'));
    const gate = barrier.acquireSync();
    const args = [name, String(dataSize), barrier.path];
    const kids = Array.from({ length: 16 }, () => startReporting('mutex-open-race.js', args));
    await Promise.all(kids.map((k) => k.started));
    await sleep(100); // each printed `ready` just before blocking on the barrier
    gate.release(); // wakes all 16 at once
    barrier.close();
    const results = await Promise.all(kids.map((k) => k.closed));
    const reports = results.map((r) => {
      assert.equal(r.code, 0, `opener failed: ${r.out}${r.err}`);
      return answer(r.out, 'opened');
    });
    for (const r of reports) {
      assert.equal(r.error, undefined, `pid ${r.pid} failed to open: ${JSON.stringify(r.error)}`);
      assert.equal(r.ready, true, 'the region was ready when its constructor returned');
      assert.equal(r.dataSize, dataSize);
      assert.equal(r.ownerDied, false);
      // A second initialisation would have zeroed count and token: each
      // holder's token must still be one more than the appends it saw.
      assert.equal(BigInt(r.token), BigInt(r.count + 1), `pid ${r.pid}: token ${r.token} after ${r.count} appends`);
    }
    const counts = reports.map((r) => r.count).sort((a, b) => a - b);
    assert.deepEqual(
      counts,
      Array.from({ length: 16 }, (_, i) => i),
    );
    const firsts = reports.filter((r) => r.count === 0);
    assert.equal(firsts.length, 1, 'exactly one process found the data fresh');
    for (const r of reports) assert.equal(r.first, firsts[0].pid, `pid ${r.pid} saw the first holder's mark`);

    const m = new SharedMutex(name, { dataSize });
    try {
      assert.equal(m.data.readUInt32LE(0), 16);
      const pids = Array.from({ length: 16 }, (_, i) => m.data.readUInt32LE(8 + 4 * i)).sort();
      assert.deepEqual(pids, reports.map((r) => r.pid).sort());
      assert.equal(m.info().token, 16n);
    } finally {
      m.close();
    }
  });
});
