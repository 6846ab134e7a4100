'use strict';
// A handle dropped without release() (issue 10, item 12) is released when it
// is garbage-collected, with a process warning naming the lock (and, with
// --trace-warnings, where it was acquired); a handle still referenced is
// never touched. Every lock kind (FileLock, SharedMutex, Semaphore), every
// way to acquire, in a child run with
// --expose-gc.
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { FileLock, Semaphore, SharedMutex } = require('..');
const { skipBecause, tmpDir, FIXTURES, othersCanLock } = require('./support/helpers');

function runDropper(flags) {
  const prefix = `interlock-gc-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const args = ['--expose-gc', ...flags, path.join(FIXTURES, 'drop-handle.js'), tmpDir(), prefix];
  return new Promise((resolve, reject) =>
    execFile(process.execPath, args, { timeout: 20000 }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(JSON.parse(out)),
    ),
  );
}

describe('handles dropped without release()', () => {
  it('are released on garbage collection with a warning naming the lock; kept handles stay held', async () => {
    const out = await runDropper([]);
    assert.equal(Object.keys(out).length, 9);
    for (const [what, r] of Object.entries(out)) {
      assert.equal(r.freeHere, true, `${what}: the lock is free again in this thread`);
      assert.equal(r.freeElsewhere, true, `${what}: and for other processes`);
      assert.equal(r.keptHeld, true, `${what}: a handle still referenced keeps its lock`);
      assert.equal(r.warnings.length, 1, `${what}: one warning, got ${JSON.stringify(r.warnings)}`);
      const [w] = r.warnings;
      assert.equal(w.name, 'Warning');
      assert.match(w.message, /garbage-collected without release\(\).*--trace-warnings/);
    }
  });

  it('with --trace-warnings, the warning says where the handle was acquired', async function () {
    if (process.versions.deno) {
      // denoland/std#1499: Deno does not expose its flags (execArgv is empty).
      // This runtime cannot show the child the flag the case is about; the reason is printed.
      skipBecause(this, 'a child given --trace-warnings shows neither that flag in execArgv nor traceProcessWarnings');
    }
    const out = await runDropper(['--trace-warnings']);
    for (const [what, r] of Object.entries(out)) {
      assert.equal(r.freeHere, true, what);
      assert.equal(r.warnings.length, 1, what);
      assert.match(r.warnings[0].message, /It was acquired at .*drop-handle\.js:\d+/, what);
      assert.match(r.warnings[0].stack, /drop-handle\.js:\d+/, what);
    }
  });

  // A lock keeps a new handle itself until a sweep 100 ms later (SWEEP_MS),
  // then only a small record of it (lib/handle.ts): a handle that lived
  // across that swap must still be released exactly once, by whichever comes
  // first. `turn` outlasts the sweep by order, not by timing: Node runs the
  // sweep's timer, armed at the grant, before a longer one armed after it.
  describe('a handle held across a sweep (swapped for its record)', () => {
    const turn = () => new Promise((resolve) => setTimeout(resolve, 150));
    const dir = tmpDir();
    const kinds = {
      FileLock: (n) => ({ make: () => new FileLock(path.join(dir, `${n}.lock`)), file: path.join(dir, `${n}.lock`) }),
      SharedMutex: (n) => ({ make: () => new SharedMutex(n), unlink: () => SharedMutex.unlink(n) }),
      Semaphore: (n) => ({ make: () => new Semaphore(n, { permits: 1 }), unlink: () => Semaphore.unlink(n) }),
    };
    for (const [kind, open] of Object.entries(kinds)) {
      it(`${kind}: close() of its instance releases it; a late release() then frees nothing of the next holder`, async () => {
        const k = open(`interlock-gc-turn-${process.pid}-${kind}`);
        const a = k.make();
        const b = k.make(); // another instance of this thread: the same queue
        try {
          const h = a.acquireSync();
          await turn(); // the sweep swaps h for its record
          assert.notEqual(h._hold, undefined, 'the sweep has swapped it');
          assert.equal(h.released, false);
          assert.equal(b.tryAcquire(), null, 'still held after the swap');
          a.close();
          assert.equal(h.released, true, 'close() released what the instance held');
          const next = b.acquireSync({ timeout: 1000 });
          h.release(); // late: must not touch `next`
          assert.equal(next.released, false);
          if (k.file !== undefined) assert.equal(othersCanLock(k.file), false, 'the file stays locked');
          await turn();
          next.release();
          assert.equal(next.released, true);
          const again = b.tryAcquire();
          assert.notEqual(again, null, 'released once, and free again');
          again.release();
        } finally {
          a.close();
          b.close();
          k.unlink?.();
        }
      });
    }
  });
});
