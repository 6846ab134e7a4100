'use strict';
// Semaphore in one process: permits and weights, FIFO within a thread, the
// large-weight gate, timeouts and aborts that leak no permit (checked with
// info() and from another process), sync deadlock checks, info, unlink.
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { LockError, Semaphore } = require('..');
const { evalArgs, sleep, waitFor, waitsBlockedIn } = require('./support/helpers');

const ROOT = path.resolve(__dirname, '..');
let seq = 0;
const names = [];
function fresh(tag) {
  const name = `interlock-test-sem-${process.pid}-${tag}-${seq++}`;
  names.push(name);
  return name;
}

// What another process sees: free permits, and whether it can take `weight` now.
function fromOutside(name, permits, weight) {
  const code = `const { Semaphore } = require(${JSON.stringify(ROOT)});
const s = new Semaphore(argv[0], { permits: +argv[1] });
const available = s.info().available;
const h = s.tryAcquire({ weight: +argv[2] });
process.stdout.write(JSON.stringify({ available, took: h !== null }));`;
  return JSON.parse(execFileSync(process.execPath, evalArgs(code, name, String(permits), String(weight))));
}

describe('Semaphore', () => {
  const opened = [];
  const open = (name, permits, extra) => {
    const s = new Semaphore(name, { permits, ...extra });
    opened.push(s);
    return s;
  };
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  after(() => {
    for (const name of names) {
      try {
        Semaphore.unlink(name);
      } catch {}
    }
  });

  it('grants at most `permits` at once, with weights', () => {
    const s = open(fresh('count'), 3);
    const a = s.tryAcquire();
    const b = s.tryAcquire({ weight: 2 });
    assert.ok(a && b);
    assert.equal(s.tryAcquire(), null);
    assert.equal(s.info().available, 0);
    assert.deepEqual(
      s.info().holders.map((h) => [h.pid, h.weight]),
      [
        [process.pid, 1],
        [process.pid, 2],
      ],
    );
    b.release();
    assert.equal(s.info().available, 2);
    const c = s.tryAcquire({ weight: 2 });
    assert.ok(c);
    assert.equal(c.weight, 2);
    a.release();
    c.release();
    c.release(); // idempotent
    assert.deepEqual(s.info(), { permits: 3, available: 3, waiting: 0, handoffs: 0, holders: [] });
  });

  it('tokens increase strictly across grants and instances; ownerDied is false after clean releases', () => {
    const name = fresh('token');
    const s = open(name, 2);
    const t = open(name, 2);
    const tokens = [];
    for (let i = 0; i < 5; i++) {
      const h = (i % 2 ? s : t).acquireSync();
      assert.equal(h.ownerDied, false);
      tokens.push(h.token);
      h.release();
    }
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${tokens}`);
    assert.equal(typeof tokens[0], 'bigint');
  });

  it('waiters of one thread are served in FIFO order', async () => {
    const s = open(fresh('fifo'), 2);
    const held = s.tryAcquire({ weight: 2 });
    const order = [];
    const waits = [1, 2, 1, 1].map((weight, i) =>
      s.acquire({ weight }).then((h) => {
        order.push(i);
        return new Promise((released) => setTimeout(() => released(h.release()), 5));
      }),
    );
    await sleep(20);
    assert.deepEqual(order, []);
    held.release();
    await Promise.all(waits); // every holder has released
    assert.deepEqual(order, [0, 1, 2, 3]);
    assert.equal(s.info().available, 2);
  });

  it('a waiting heavy request is not overtaken by light ones from another process', async () => {
    const name = fresh('gate');
    const s = open(name, 2);
    const one = s.tryAcquire();
    const heavy = s.acquire({ weight: 2 });
    // Blocked in semtimedop for the count, so it has shut the gate first.
    assert.ok(await waitFor(() => waitsBlockedIn('semtimedop') === 1, 10000), 'the heavy wait never blocked');
    // Without the gate another process could take the one free permit now.
    assert.deepEqual(fromOutside(name, 2, 1), { available: 1, took: false });
    one.release();
    const h = await heavy;
    assert.equal(h.weight, 2);
    h.release();
    assert.deepEqual(fromOutside(name, 2, 1), { available: 2, took: true });
  });

  it('a timeout rejects with ETIMEDOUT and leaves no permit taken', async () => {
    const name = fresh('timeout');
    const s = open(name, 2);
    const held = s.tryAcquire();
    for (const weight of [2, 1]) {
      if (weight === 1) s.tryAcquire(); // now all taken: a weight-1 wait also times out
      await assert.rejects(s.acquire({ weight, timeout: 30 }), (err) => {
        assert.ok(err instanceof LockError);
        assert.equal(err.code, 'ETIMEDOUT');
        assert.equal(err.syscall, 'semop');
        assert.equal(err.path, `/dev/shm/${name}`);
        return true;
      });
    }
    assert.equal(s.info().available, 0);
    s.close(); // gives back what this instance held
    assert.deepEqual(fromOutside(name, 2, 2), { available: 2, took: true });
    assert.equal(held.released, true);
  });

  it('an abort rejects with AbortError and leaves no permit taken, also when the grant races it', async () => {
    const name = fresh('abort');
    const s = open(name, 3);
    for (let i = 0; i < 30; i++) {
      const held = s.tryAcquire({ weight: 3 });
      const ac = new AbortController();
      const waiting = s.acquire({ weight: 1 + (i % 3), signal: ac.signal });
      await sleep(i % 5);
      held.release(); // the grant and the abort land together
      ac.abort(new Error('stop'));
      const h = await waiting.catch((err) => {
        assert.equal(err.name, 'AbortError');
        assert.equal(err.code, 'ABORT_ERR');
        return null;
      });
      h?.release();
      assert.equal(s.info().available, 3, `round ${i}`);
    }
    assert.deepEqual(fromOutside(name, 3, 3), { available: 3, took: true });
  });

  it('acquireSync waits with a timeout, and refuses what only this thread could free (EDEADLK)', () => {
    const s = open(fresh('sync'), 2);
    const a = s.acquireSync({ weight: 1 });
    assert.throws(() => s.acquireSync({ weight: 2 }), { code: 'EDEADLK' });
    const t0 = Date.now();
    const b = s.acquireSync({ weight: 1 });
    assert.throws(() => s.acquireSync({ weight: 1, timeout: 40 }), { code: 'EDEADLK' });
    b.release();
    const c = s.acquireSync({ timeout: 40 });
    assert.ok(Date.now() - t0 < 1000);
    a.release();
    c.release();
  });

  it('acquireSync times out with ETIMEDOUT when another process holds the permits', () => {
    const name = fresh('sync-timeout');
    const s = open(name, 1);
    const code = `const { Semaphore } = require(${JSON.stringify(ROOT)});
const s = new Semaphore(argv[0], { permits: 1 });
const t0 = Date.now();
try { s.acquireSync({ timeout: 50 }); process.stdout.write('granted'); }
catch (e) { process.stdout.write(e.code + ' ' + (Date.now() - t0 >= 45)); }`;
    const h = s.acquireSync();
    assert.equal(execFileSync(process.execPath, evalArgs(code, name)).toString(), 'ETIMEDOUT true');
    h.release();
    assert.equal(execFileSync(process.execPath, evalArgs(code, name)).toString(), 'granted');
  });

  it('run and runSync release on return and on throw', async () => {
    const s = open(fresh('run'), 2);
    assert.equal(await s.run((h) => h.weight, { weight: 2 }), 2);
    assert.equal(
      s.runSync((h) => h.weight),
      1,
    );
    await assert.rejects(
      s.run(() => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.throws(() =>
      s.runSync(() => {
        throw new Error('boom');
      }),
    );
    assert.equal(s.info().available, 2);
  });

  it('close rejects what the instance waits for and gives back what it holds', async () => {
    const name = fresh('close');
    const s = open(name, 1);
    const other = open(name, 1);
    const held = other.tryAcquire();
    const waiting = s.acquire();
    other.close();
    await sleep(10);
    s.close();
    const got = await waiting.then(
      (h) => h,
      (err) => err,
    );
    if (!(got instanceof Error)) got.release();
    assert.equal(held.released, true);
    assert.deepEqual(fromOutside(name, 1, 1), { available: 1, took: true });
    assert.throws(() => s.tryAcquire(), { code: 'ERR_LOCK_CLOSED' });
    await assert.rejects(s.acquire(), { code: 'ERR_LOCK_CLOSED' });
    assert.throws(() => s.info(), { code: 'ERR_LOCK_CLOSED' });
  });

  it('every opener must give the same permits', () => {
    const name = fresh('permits');
    const s = open(name, 2);
    assert.throws(() => open(name, 3), { code: 'ERR_INCOMPATIBLE_REGION' });
    s.close();
    // From another process (no instance of this thread to compare with).
    const code = `const { Semaphore } = require(${JSON.stringify(ROOT)});
try { new Semaphore(argv[0], { permits: 5 }); } catch (e) { process.stdout.write(e.code); }`;
    assert.equal(execFileSync(process.execPath, evalArgs(code, name)).toString(), 'ERR_INCOMPATIBLE_REGION');
  });

  it('unlink removes the name and the semaphore set; a waiter then fails with EIDRM', async () => {
    const name = fresh('unlink');
    const s = open(name, 1);
    const held = s.tryAcquire();
    const other = open(name, 1);
    const waiting = other.acquire({ timeout: 5000 });
    await sleep(20);
    Semaphore.unlink(name);
    assert.equal(fs.existsSync(`/dev/shm/${name}`), false);
    await assert.rejects(waiting, { code: 'EIDRM', syscall: 'semop' });
    held.release(); // nothing to give back to: no error
    assert.throws(() => Semaphore.unlink(name), { code: 'ENOENT', syscall: 'unlink', path: `/dev/shm/${name}` });
  });

  it('unlink before a wait starts: that wait fails with EIDRM too, not EINVAL', async () => {
    // The kernel says EIDRM only to a semop already waiting when the set goes;
    // one that starts after gets EINVAL. A waiter's code must not depend on
    // which side of the unlink its wait thread happened to be.
    const name = fresh('unlink-first');
    const s = open(name, 1);
    const held = s.tryAcquire();
    const other = open(name, 1);
    Semaphore.unlink(name);
    await assert.rejects(other.acquire({ timeout: 5000 }), { code: 'EIDRM', syscall: 'semop' });
    assert.throws(() => other.tryAcquire(), { code: 'EIDRM', syscall: 'semop' });
    held.release(); // else acquireSync is refused first: this thread holds every permit (EDEADLK)
    assert.throws(() => other.acquireSync({ timeout: 5000 }), { code: 'EIDRM', syscall: 'semop' });
    other.close();
  });
});
