'use strict';
// FileLock basics within one thread: handles, modes, the FIFO queue.
const assert = require('node:assert/strict');
const path = require('node:path');
const { FileLock, LockHandle } = require('..');
const { tmpDir } = require('./support/helpers');

describe('FileLock basics', () => {
  let dir;
  before(() => {
    dir = tmpDir();
  });

  it('acquire resolves a handle; release is idempotent', async () => {
    const lock = new FileLock(path.join(dir, 'a.lock'));
    const h = await lock.acquire();
    assert.ok(h instanceof LockHandle);
    assert.equal(h.released, false);
    assert.equal(h.shared, false);
    assert.equal(lock.tryAcquire(), null, 'held exclusively: try must fail');
    h.release();
    h.release();
    assert.equal(h.released, true);
    const again = lock.tryAcquire();
    assert.ok(again, 'free after release');
    again[Symbol.dispose]();
    assert.equal(again.released, true);
    lock.close();
  });

  it('grants waiters of one thread in FIFO order, across instances', async () => {
    const file = path.join(dir, 'fifo.lock');
    const a = new FileLock(file);
    const b = new FileLock(file);
    const first = a.acquireSync();
    const order = [];
    const waits = [];
    for (let i = 0; i < 10; i++) {
      const lock = i % 2 ? a : b;
      waits.push(
        lock.acquire().then((h) => {
          order.push(i);
          h.release();
        }),
      );
    }
    first.release();
    await Promise.all(waits);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    a.close();
    b.close();
  });

  it('shared holders coexist; an exclusive request waits for them and blocks later shared ones', async () => {
    const lock = new FileLock(path.join(dir, 'sh.lock'));
    const s1 = await lock.acquire({ shared: true });
    const s2 = await lock.acquire({ shared: true });
    assert.equal(s2.shared, true);
    const events = [];
    const ex = lock.acquire().then((h) => {
      events.push('ex');
      return h;
    });
    const s3 = lock.acquire({ shared: true }).then((h) => {
      events.push('s3');
      return h;
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events, [], 'exclusive waits for shared holders; s3 waits behind it');
    s1.release();
    s2.release();
    (await ex).release();
    (await s3).release();
    assert.deepEqual(events, ['ex', 's3']);
    lock.close();
  });

  it('acquireSync throws EDEADLK when this thread holds the lock; tryAcquire returns null', () => {
    const lock = new FileLock(path.join(dir, 'dl.lock'));
    const h = lock.acquireSync();
    assert.throws(() => lock.acquireSync(), { code: 'EDEADLK', name: 'LockError' });
    assert.equal(lock.tryAcquire(), null);
    h.release();
    lock.acquireSync().release();
    lock.close();
  });

  it('run and runSync release even when fn throws', async () => {
    const lock = new FileLock(path.join(dir, 'run.lock'));
    assert.equal(await lock.run(async () => 42), 42);
    await assert.rejects(
      lock.run(async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.throws(
      () =>
        lock.runSync(() => {
          throw new Error('sync boom');
        }),
      /sync boom/,
    );
    const h = lock.tryAcquire();
    assert.ok(h, 'run/runSync released the lock');
    h.release();
    lock.close();
  });
});
