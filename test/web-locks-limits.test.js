'use strict';
// Web Locks at its limits: a full table, a scope that is not a valid name,
// a table owned by another user. Each is a clear error, never a crash.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { LockManager, locks: defaultLocks } = require('..');

let n = 0;
const made = [];
function scope() {
  const s = `limits-${process.pid}-${n++}`;
  made.push(`/dev/shm/interlock-weblocks-${process.geteuid()}-${s}`);
  return s;
}

describe('Web Locks limits', function () {
  this.timeout(30000);
  after(() => {
    for (const f of made) fs.rmSync(f, { force: true });
  });

  it('a full table rejects the next request with ERR_LOCK_TABLE_FULL; releasing makes room again', async () => {
    const locks = new LockManager({ scope: scope() });
    let release;
    const gate = new Promise((r) => {
      release = r;
    });
    const held = [];
    let full;
    for (let i = 0; i < 2000 && full === undefined; i++) {
      const p = locks.request(`n${i}`, () => gate);
      held.push(p);
      await Promise.race([p.catch((err) => (full = err)), new Promise((r) => setImmediate(r))]);
    }
    assert.ok(full instanceof Error, 'the table never filled');
    assert.equal(full.code, 'ERR_LOCK_TABLE_FULL');
    assert.match(full.message, /full/);
    assert.equal(held.length - 1, 1024, 'capacity as documented');
    release();
    await Promise.allSettled(held);
    assert.equal(await locks.request('after', (l) => l.name), 'after');
    assert.deepEqual(await locks.query(), { held: [], pending: [] });
  });

  it('a scope that is not 1 to 100 characters of [A-Za-z0-9._-] is a TypeError at construction', () => {
    for (const bad of ['', 'a/b', '..x/', 'x'.repeat(101), 42]) {
      assert.throws(
        () => new LockManager({ scope: bad }),
        (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE',
        String(bad),
      );
    }
    assert.equal(new LockManager({ scope: 'ok.name_1-2' }) instanceof LockManager, true);
    assert.equal(defaultLocks instanceof LockManager, true);
  });

  it('a table at our name owned by another user is refused, untouched (ERR_INCOMPATIBLE_REGION)', async function () {
    if (process.getuid() !== 0) {
      console.log('      skipped: needs root to make a file owned by another user');
      this.skip(); // not root: cannot make a file owned by another user; printed above
    }
    const s = scope();
    const file = made[made.length - 1];
    fs.writeFileSync(file, '', { mode: 0o666 });
    fs.chmodSync(file, 0o666);
    fs.chownSync(file, 65534, 65534);
    const locks = new LockManager({ scope: s });
    await assert.rejects(
      locks.request('x', () => {}),
      (e) => e.code === 'ERR_INCOMPATIBLE_REGION' && e.path === file,
    );
    await assert.rejects(locks.query(), (e) => e.code === 'ERR_INCOMPATIBLE_REGION');
    assert.equal(fs.statSync(file).size, 0, 'the file was not initialised');
  });
});
