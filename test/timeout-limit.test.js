'use strict';
// The longest timeout is 2**31-1 ms (issue 10, item 13): at the limit a wait
// is a real wait; beyond it every API refuses with a RangeError that names the
// limit, never "no timeout".
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FileLock, SharedMutex, flock, flockSync } = require('..');
const { tmpDir, holdFlock, sleep, startTracked } = require('./support/helpers');

const MAX = 2 ** 31 - 1;

describe('the longest timeout', () => {
  let dir;
  before(() => {
    dir = tmpDir();
  });

  it('beyond 2**31-1 ms: RangeError ERR_OUT_OF_RANGE naming the limit, from every API', async () => {
    const file = path.join(dir, 'over.lock');
    const lock = new FileLock(file);
    const name = `interlock-timeout-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const mutex = new SharedMutex(name);
    const fd = fs.openSync(file, 'w');
    const expected = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /<= 2147483647 \(2\*\*31-1 ms/ };
    try {
      for (const timeout of [MAX + 1, 2 ** 31, 1e12, MAX + 0.5]) {
        assert.throws(() => lock.acquire({ timeout }), expected);
        assert.throws(() => lock.acquireSync({ timeout }), expected);
        assert.throws(() => mutex.acquire({ timeout }), expected);
        assert.throws(() => mutex.acquireSync({ timeout }), expected);
        assert.throws(() => flock(fd, 'ex', { timeout }), expected);
        assert.throws(() => flockSync(fd, 'ex', { timeout }), expected);
      }
    } finally {
      fs.closeSync(fd);
      lock.close();
      mutex.close();
      SharedMutex.unlink(name);
    }
  });

  it('at 2**31-1 ms: acquire and acquireSync really wait, and get the lock once it is free', async () => {
    const file = path.join(dir, 'max.lock');
    const lock = new FileLock(file);
    const holder = await holdFlock(file);
    const pending = lock.acquire({ timeout: MAX });
    let settled = false;
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(200);
    assert.equal(settled, false, 'still waiting while another process holds the lock');
    await holder.release();
    (await pending).release();
    // acquireSync blocks this thread: the holder must let go on its own.
    const { started: holding } = startTracked('flock', ['-x', file, 'sh', '-c', 'echo locked; sleep 0.3'], 'locked');
    await holding;
    const started = Date.now();
    lock.acquireSync({ timeout: MAX }).release();
    assert.ok(Date.now() - started >= 150, 'acquireSync waited for the holder');
    lock.close();
  });
});
