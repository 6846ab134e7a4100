'use strict';
// Waits on threads that cannot make their POSIX timer (RLIMIT_SIGPENDING also
// caps timers) still honour `timeout`, close() and acquireSync's timeout: they
// poll instead of blocking in flock(2) where nothing could wake them.
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Semaphore } = require('..');
const { tmpDir, holdFlock, startFixture, killChildren } = require('./support/helpers');

const TIMEOUT = 300;

describe('waits without a per-thread timer (low RLIMIT_SIGPENDING)', function () {
  this.timeout(30000);
  afterEach(killChildren);

  before(function () {
    const why =
      process.getuid() !== 0
        ? 'needs root: the fixture becomes an unused uid, whose signal count is its own'
        : spawnSync('prlimit', ['--version']).status !== 0
          ? 'needs prlimit(1) (util-linux)'
          : null;
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip(); // needs root (to become an unused uid) and prlimit(1); which one is missing is printed above
    }
  });

  it('timeouts fire, close() cancels (FileLock, Semaphore), acquireSync times out: none waits for ever', async () => {
    const dir = tmpDir('interlock-timers-');
    fs.chmodSync(dir, 0o777);
    const holders = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      const file = path.join(dir, `${name}.lock`);
      fs.writeFileSync(file, '');
      fs.chmodSync(file, 0o666);
      holders.push(await holdFlock(file));
    }
    // A uid no other process uses: the limit counts every timer of the user.
    // Below 2^31: Bun's setuid/setgid refuse larger ids (Node takes up to 2^32-2).
    const uid = 2000000000 + (process.pid % 1000000);
    const sem = `ilt-${process.pid}-timers`;
    const { closed } = startFixture('timer-limit.js', [String(uid), dir, String(TIMEOUT), sem]);
    const r = await closed;
    for (const h of holders) await h.release();
    try {
      Semaphore.unlink(sem);
    } catch {} // the fixture failed before it made one
    assert.ok(r.code === 0 || r.code === 2, `fixture: ${r.code} ${r.out} ${r.err.slice(0, 600)}`);
    const out = JSON.parse(r.out.trim().split('\n').pop());
    assert.equal(out.sigq, '1/1', 'detector: the limit leaves room for one timer, and it is taken');
    for (const name of ['a', 'b', 'd']) {
      assert.equal(out[name].code, 'ETIMEDOUT', `${name}: ${JSON.stringify(out[name])}`);
      assert.ok(out[name].ms >= TIMEOUT - 20 && out[name].ms < TIMEOUT + 2500, `${name}: ${out[name].ms} ms`);
    }
    for (const name of ['c', 'e']) {
      assert.notEqual(out[name].code, 'granted', `${name} was closed while it waited`);
      assert.ok(out[name].ms < TIMEOUT + 2500, `close() ended ${name}'s wait after ${out[name].ms} ms`);
    }
  });
});
