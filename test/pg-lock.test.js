'use strict';
// PgLock against a real PostgreSQL: advisory locks held by a pooled
// connection, waits in the server's queue, lock_timeout and cancel requests,
// the server freeing a killed holder's lock at once, a connection killed
// under a holder and a waiter, and withTransaction's xact locks.
const assert = require('node:assert/strict');
const pg = require('pg');
const { PgLock, advisoryKey } = require('interlock/postgres');
const { LockError } = require('..');
const { sleep, startFixture, tmpDir, waitFor, killChildren } = require('./support/helpers');
const { assertExclusion, assertHandoff, needServer, serverFor } = require('./support/servers');

let seq = 0;
const fresh = (what) => `test-${process.pid}-${what}-${++seq}`;

describe('PgLock (real PostgreSQL)', function () {
  this.timeout(20000);
  let server = null;
  let pool = null;
  let other = null; // a connection of its own, to look from outside

  before(async function () {
    this.timeout(20000);
    server = await serverFor('postgres');
    if (typeof server === 'string') return;
    pool = new pg.Pool({ connectionString: server.url, max: 8 });
    other = new pg.Client(server.url);
    await other.connect();
  });

  after(async () => {
    killChildren();
    await other?.end();
    await pool?.end();
    server?.stop?.();
  });

  beforeEach(function () {
    needServer(this, server); // skipped without a PostgreSQL (CI always starts one): the reason is printed
  });

  /** Whether another session could take `name` right now (and gives it back). */
  async function freeForOthers(name) {
    const key = advisoryKey(name);
    const { rows } = await other.query(`SELECT pg_try_advisory_lock(${key}) AS free`);
    if (rows[0].free) await other.query(`SELECT pg_advisory_unlock(${key})`);
    return rows[0].free;
  }

  it('grants, tokens grow, a waiter gets it right after release, and the key is the documented hash', async () => {
    const name = fresh('basic');
    assert.equal(PgLock.key(name), require('node:crypto').createHash('sha256').update(name).digest().readBigInt64BE(0));
    await assertHandoff(new PgLock(pool, name), async () => !(await freeForOthers(name)));
    assert.equal(pool.totalCount - pool.idleCount, 0, 'a pooled connection was not given back');
  });

  it('run(fn) passes the handle and its signal; shared holders coexist, an exclusive one waits', async () => {
    const name = fresh('shared');
    const shared = new PgLock(pool, name, { shared: true });
    const seen = await shared.run(async (handle, signal) => {
      assert.equal(signal, handle.signal);
      const again = await shared.acquire({ timeout: 1000 });
      const excl = await new PgLock(pool, name).acquire({ timeout: 100 }).catch((e) => e.code);
      await again.release();
      return excl;
    });
    assert.equal(seen, 'ETIMEDOUT');
    assert.equal(await freeForOthers(name), true);
  });

  it('a Client (not a Pool) serves one hold of a name at a time', async () => {
    const client = new pg.Client(server.url);
    await client.connect();
    try {
      const lock = new PgLock(client, fresh('client'));
      const h = await lock.acquire();
      // Session locks are re-entrant: without the turn, this would be granted.
      assert.equal(await lock.acquire({ timeout: 100 }).catch((e) => e.code), 'ETIMEDOUT');
      const next = lock.acquire();
      await h.release();
      await (await next).release();
    } finally {
      await client.end();
    }
  });

  it('timeouts and aborts leave nothing held (checked from another session right after)', async () => {
    const name = fresh('timeouts');
    const lock = new PgLock(pool, name);
    for (let i = 0; i < 10; i++) {
      const ac = new AbortController();
      const p = lock.acquire({ timeout: i % 2 ? 0 : undefined, signal: ac.signal });
      if (i % 2 === 0) setImmediate(() => ac.abort());
      const r = await p.then(
        (h) => h,
        (e) => e,
      );
      if (r instanceof Error) {
        assert.ok(r.code === 'ETIMEDOUT' || r.code === 'ABORT_ERR', `${r.code} ${r.message}`);
        assert.equal(await freeForOthers(name), true, `rejected (${r.code}) yet held`);
      } else await r.release();
    }
    const holder = await lock.acquire();
    const ac = new AbortController();
    const t0 = performance.now();
    const waits = [lock.acquire({ timeout: 100 }), lock.acquire({ signal: ac.signal })];
    setTimeout(() => ac.abort(new Error('bye')), 50);
    const results = await Promise.allSettled(waits);
    assert.deepEqual(
      results.map((r) => r.reason?.code),
      ['ETIMEDOUT', 'ABORT_ERR'],
    );
    assert.ok(performance.now() - t0 < 2000, 'the cancel request did not stop the wait');
    await holder.release();
    assert.equal(await freeForOthers(name), true);
    // A wait that gave up while its pool.connect() was still in flight (a
    // new backend can take longer than the 50 ms abort on a loaded machine)
    // gives that connection back when it arrives, after the rejection: the
    // pool counts it from the start of the connect, so wait for it.
    const inUse = () => pool.totalCount - pool.idleCount;
    assert.ok(await waitFor(() => inUse() === 0, 10000), `${inUse()} pooled connections were not given back`);
  });

  it('an abort whose cancel lands after the lock was taken, within the same statement: nothing is held when it rejects', async () => {
    // The lock statement takes the advisory lock, then nextval() on the token
    // sequence. Another session's open ALTER SEQUENCE (it locks the sequence) stops
    // it right there, lock taken: the abort's cancel then fails the statement,
    // and a session lock outlives that. A Client, whose connection PgLock keeps.
    const name = fresh('cancel-after-lock');
    const client = new pg.Client(server.url);
    await client.connect();
    const blocker = new pg.Client(server.url);
    await blocker.connect();
    try {
      const lock = new PgLock(client, name);
      await (await lock.acquire()).release(); // makes the sequence first
      await blocker.query('BEGIN; ALTER SEQUENCE interlock_token INCREMENT BY 1');
      const ac = new AbortController();
      const waiting = lock.acquire({ signal: ac.signal });
      assert.ok(await waitFor(async () => !(await freeForOthers(name)), 5000), 'the lock was never taken');
      ac.abort();
      await assert.rejects(waiting, { name: 'AbortError' });
      assert.equal(await freeForOthers(name), true, 'rejected with AbortError, yet its session holds the lock');
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end();
      await client.end();
    }
  });

  it('a wait given up while its pooled connection is still being made: the connection goes back once, when it arrives (no double release, no crash)', async () => {
    // A pool with no idle connection: connect() takes round trips, so the
    // abort (next turn of the loop) and timeout 0 come while it is in flight.
    // The name is held on another connection, so neither wait can be granted
    // whenever its connection arrives (a free name let timeout 0 win once,
    // on a connection the aborted wait had already given back).
    const own = new pg.Pool({ connectionString: server.url, max: 4 });
    const inUse = () => own.totalCount - own.idleCount;
    const name = fresh('connecting');
    await other.query(`SELECT pg_advisory_lock(${advisoryKey(name)})`);
    let held = true;
    // Mocha passes a rejection nobody handled on to the process's listeners.
    const unhandled = [];
    const onUnhandled = (reason) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const lock = new PgLock(own, name);
      const ac = new AbortController();
      const aborted = lock.acquire({ signal: ac.signal });
      setImmediate(() => ac.abort());
      await assert.rejects(aborted, { name: 'AbortError' });
      assert.ok(inUse() > 0, 'no connect was in flight at the abort: the case did not happen');
      await assert.rejects(lock.acquire({ timeout: 0 }), { code: 'ETIMEDOUT' });
      assert.ok(await waitFor(() => inUse() === 0, 10000), `${inUse()} connections were not given back`);
      // A second release of the same client throws in a promise callback
      // (pg-pool refuses it), a crash outside mocha: give it turns to surface.
      await sleep(100);
      assert.deepEqual(
        unhandled.map((e) => e?.message),
        [],
      );
      assert.equal(inUse(), 0);
      await other.query(`SELECT pg_advisory_unlock(${advisoryKey(name)})`);
      held = false;
      assert.equal(await freeForOthers(name), true);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      if (held) await other.query(`SELECT pg_advisory_unlock(${advisoryKey(name)})`);
      // Bounded: with a connection never given back (the failure the waitFor
      // above reports), pool.end() would wait for it for ever.
      await Promise.race([own.end(), sleep(3000)]);
    }
  });

  it('exclusion across 4 processes and two "hosts": exact counter; the no-lock control loses updates', async function () {
    this.timeout(60000);
    await assertExclusion('postgres', server.url, tmpDir());
  });

  it('a SIGKILLed holder: the server frees the lock as its connection closes', async () => {
    const name = fresh('killed');
    const holder = startFixture('remote-holder.js', ['hold', 'postgres', server.url, name, '0'], 'held');
    await holder.started;
    const waiting = new PgLock(pool, name).acquire({ timeout: 5000 });
    await sleep(50);
    const killedAt = performance.now();
    holder.child.kill('SIGKILL');
    const h = await waiting;
    const after = performance.now() - killedAt;
    console.log(`      (granted ${after.toFixed(0)} ms after SIGKILL)`);
    assert.ok(after < 1000, `${after} ms`);
    await h.release();
  });

  it('the connection killed by the server mid-hold and mid-wait: ERR_LOCK_LOST, ERR_LOCK_SERVER, nothing hangs', async () => {
    const name = fresh('terminated');
    const own = new pg.Pool({ connectionString: server.url, max: 2 });
    own.on('error', () => {}); // idle clients whose backend was terminated
    let h;
    try {
      const lock = new PgLock(own, name);
      h = await lock.acquire();
      const waiter = lock.acquire().catch((e) => e);
      // Both sessions: the holder's (granted) and the waiter's (blocked on it), by
      // the advisory lock itself (a bigint key is classid's 32 bits, then objid's).
      const sessions = async () =>
        (
          await other.query(
            `SELECT l.pid, a.wait_event_type FROM pg_locks l JOIN pg_stat_activity a USING (pid)
              WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.pid <> pg_backend_pid()
                AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint`,
            [`${advisoryKey(name)}`],
          )
        ).rows;
      assert.ok(
        await waitFor(async () => (await sessions()).some((r) => r.wait_event_type === 'Lock'), 5000),
        'the waiter never queued',
      );
      const pids = (await sessions()).map((r) => r.pid);
      assert.equal(pids.length, 2);
      // With a timeout, pg_terminate_backend waits for the backend to exit.
      // Without one it returns at once, and a backend lets go of its advisory
      // locks only while exiting, after its client has already seen the
      // socket close: the freeness check below raced that (seen once in CI).
      const ended = await other.query(
        'SELECT bool_and(pg_terminate_backend(pid, 5000)) AS ended FROM unnest($1::int[]) AS pid',
        [pids],
      );
      assert.equal(ended.rows[0].ended, true, 'a terminated backend did not exit in 5 s');
      // Terminating both backends races: the waiter's may get the lock in the
      // instant the holder's dies, before its own goes. Either way it must hear it.
      const got = await waiter;
      if (got instanceof LockError) assert.equal(got.code, 'ERR_LOCK_SERVER');
      else {
        assert.ok(await waitFor(() => got.signal.aborted, 3000), 'the waiter, granted, was not told of its loss');
        assert.equal(got.signal.reason.code, 'ERR_LOCK_LOST');
        await got.release().catch(() => {});
      }
      assert.ok(await waitFor(() => h.signal.aborted, 3000), 'the holder was not told');
      assert.equal(h.signal.reason.code, 'ERR_LOCK_LOST');
      await h.release().catch(() => {}); // its connection is gone; the server let go already
      assert.equal(await freeForOthers(name), true);
      const again = await lock.acquire({ timeout: 2000 }); // the pool recovers
      await again.release();
    } finally {
      await h?.release().catch(() => {});
      // pg's pool.end() sometimes waits for ever on a client whose backend
      // was terminated (its 'end' came before end() was called): pg's, not ours.
      await Promise.race([own.end(), sleep(3000)]);
    }
  });

  it('withTransaction: serialises, gives a token, and the lock ends with COMMIT or ROLLBACK', async () => {
    const name = fresh('tx');
    const order = [];
    const body =
      (id) =>
      async ({ client, token }) => {
        order.push(`${id}+`);
        assert.equal(typeof token, 'bigint');
        await client.query('SELECT pg_sleep(0.05)');
        order.push(`${id}-`);
        return token;
      };
    const [a, b] = await Promise.all([
      PgLock.withTransaction(pool, name, body('a')),
      PgLock.withTransaction(pool, name, body('b')),
    ]);
    assert.notEqual(a, b);
    assert.ok(order.join(' ') === 'a+ a- b+ b-' || order.join(' ') === 'b+ b- a+ a-', order.join(' '));
    assert.equal(await freeForOthers(name), true);
    await assert.rejects(
      PgLock.withTransaction(pool, name, () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await freeForOthers(name), true);
    // Held by a session lock elsewhere: the timeout applies.
    const h = await new PgLock(pool, name).acquire();
    await assert.rejects(
      PgLock.withTransaction(pool, name, () => 1, { timeout: 50 }),
      { code: 'ETIMEDOUT' },
    );
    await h.release();
  });
});
