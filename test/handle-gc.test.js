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
const { skipBecause, tmpDir, FIXTURES } = require('./support/helpers');

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
});
