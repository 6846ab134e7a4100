'use strict';
// RedisLock against a real redis-server: exclusion across processes (and
// two "hosts" with their own machine-local lock dirs), the lease and its
// watchdog, fencing after a pause, holders killed, the server killed and
// restarted under a holder and a waiter, and timeouts/aborts that must
// never leave the key behind.
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { createClient } = require('redis');
const Redis = require('ioredis');
const { RedisLock } = require('interlock/redis');
const { LockError } = require('..');
const { openRedisStore } = require('../examples/counter-server/store-redis');
const { evalArgs, sleep, startFixture, tmpDir, waitFor, killChildren } = require('./support/helpers');
const { assertExclusion, assertHandoff, counting, needServer, serverFor, startRedis } = require('./support/servers');

const KEY = (name) => `interlock:{${name}}`;
let seq = 0;
const fresh = (what) => `test-${process.pid}-${what}-${++seq}`;

async function nodeRedis(url) {
  const client = createClient({ url, socket: { reconnectStrategy: (n) => Math.min(n * 20, 200) } });
  client.on('error', () => {});
  await client.connect();
  return client;
}

describe('RedisLock (real redis-server)', function () {
  this.timeout(20000);
  let server = null;
  let client = null; // node-redis
  let io = null; // ioredis

  before(async function () {
    this.timeout(15000);
    server = await serverFor('redis');
    if (typeof server === 'string') return;
    client = await nodeRedis(server.url);
    io = new Redis(server.url, { lazyConnect: true });
    await io.connect();
  });

  after(async () => {
    killChildren();
    await client?.close();
    io?.disconnect();
    await server?.stop?.();
  });

  beforeEach(function () {
    needServer(this, server); // skipped without a redis-server (CI always starts one): the reason is printed
  });

  for (const which of ['node-redis', 'ioredis']) {
    it(`${which}: grants, tokens grow, the key is gone after release, a waiter is woken within a round trip`, async () => {
      const c = which === 'node-redis' ? client : io;
      const name = fresh('basic');
      const lock = new RedisLock(c, name, { ttl: 1000 }); // woken by the release, not by the lease's end
      await assertHandoff(lock, async () => (await client.exists(KEY(name))) === 1);
    });
  }

  it('run(fn) passes the handle and its signal and releases after fn, also when fn throws', async () => {
    const name = fresh('run');
    const lock = new RedisLock(client, name);
    const seen = await lock.run((handle, signal) => {
      assert.equal(signal, handle.signal);
      return client.exists(KEY(name));
    });
    assert.equal(seen, 1);
    assert.equal(await client.exists(KEY(name)), 0);
    await assert.rejects(
      lock.run(() => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await client.exists(KEY(name)), 0);
  });

  it('the watchdog keeps the lease past its ttl while held', async () => {
    const name = fresh('watchdog');
    const lock = new RedisLock(client, name, { ttl: 300 });
    const h = await lock.acquire();
    await sleep(1000);
    assert.equal(h.signal.aborted, false);
    const pttl = await client.pTTL(KEY(name));
    assert.ok(pttl > 0 && pttl <= 300, `pttl ${pttl}`);
    await h.release();
    assert.equal(await client.exists(KEY(name)), 0);
  });

  it('a lease taken over before anyone read handle.signal: the signal, read later, is already aborted', async () => {
    const name = fresh('lost-unread');
    const h = await new RedisLock(client, name, { ttl: 300 }).acquire();
    // Another owner's key in its place: the next renewal (every ttl/3) finds it.
    await client.set(KEY(name), 'someone else', { PX: 5000 });
    await sleep(600);
    assert.equal(h.signal.aborted, true, 'the loss was not kept for a signal made later');
    assert.equal(h.signal.reason.code, 'ERR_LOCK_LOST');
    assert.match(h.signal.reason.message, /another owner holds it/);
    await h.release(); // compare-and-delete: the other owner's key stays
    assert.equal(await client.get(KEY(name)), 'someone else');
    await client.del(KEY(name));
  });
  it('waiters on six clients are granted in arrival order (FIFO)', async () => {
    const name = fresh('fifo');
    const clients = await Promise.all([0, 1, 2, 3, 4, 5].map(() => nodeRedis(server.url)));
    try {
      const first = await new RedisLock(client, name).acquire();
      const order = [];
      const waits = [];
      for (const [i, c] of clients.entries()) {
        waits.push(
          new RedisLock(c, name).acquire().then(async (h) => {
            order.push(i);
            await sleep(5);
            await h.release();
          }),
        );
        // Queued before the next one starts.
        const queued = await waitFor(async () => (await client.lLen(`${KEY(name)}:queue`)) === i + 1);
        assert.ok(queued, `waiter ${i} never queued`);
      }
      await first.release();
      await Promise.all(waits);
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
      assert.equal(await client.exists([KEY(name), `${KEY(name)}:queue`, `${KEY(name)}:waiters`]), 0);
    } finally {
      await Promise.all(clients.map((c) => c.destroy()));
    }
  });

  for (const which of ['node-redis', 'ioredis']) {
    it(`${which}: a waiter handed the lock by a release sends no request for it (the wake-up carries its token)`, async () => {
      // The waiter's own client, counted: one request queues it, and the
      // release's message grants it. Before, the woken waiter asked again
      // (and, subscribing first, asked twice before sleeping).
      const c = which === 'node-redis' ? await nodeRedis(server.url) : new Redis(server.url, { lazyConnect: true });
      if (which === 'ioredis') await c.connect(); // its ready check (INFO) is sent before the counting starts
      const sent = counting(c);
      try {
        const name = fresh('handed');
        const holderLock = new RedisLock(client, name);
        const waiterLock = new RedisLock(c, name);
        const perHandover = [];
        for (let round = 0; round < 3; round++) {
          const held = await holderLock.acquire();
          const before = sent();
          const waiting = waiterLock.acquire();
          const queued = await waitFor(async () => (await client.lLen(`${KEY(name)}:queue`)) === 1);
          assert.ok(queued, 'the waiter never queued');
          await sleep(20); // a second request, if any, goes out now
          await held.release();
          const h = await waiting;
          perHandover.push(sent() - before);
          assert.ok(h.token > held.token, `${h.token} after ${held.token}`);
          await h.release();
        }
        // The first wait also subscribes, and asks once more after it;
        // later ones find the channel subscribed and listen first.
        assert.deepEqual(perHandover, [2, 1, 1], `requests per handover: ${perHandover}`);
      } finally {
        if (which === 'node-redis') await c.close();
        else c.disconnect();
      }
    });
  }

  it('a wake-up that names an old token is not taken for a grant: the waiter asks the server, and waits on', async () => {
    const name = fresh('old-token');
    const lock = new RedisLock(client, name);
    const held = await lock.acquire();
    let granted = null;
    const waiting = new RedisLock(io, name).acquire().then((h) => {
      granted = h;
      return h;
    });
    assert.ok(await waitFor(async () => (await client.lLen(`${KEY(name)}:queue`)) === 1), 'the waiter never queued');
    const [owner] = await client.lRange(`${KEY(name)}:queue`, 0, 0);
    const channel = `interlock:wake:${owner.split('/')[0]}`;
    // What a release that ran before the waiter's last request would have
    // said (a lease since run out): its token is not above the counter.
    await sleep(50); // subscribed by now (the waiter asks again after SUBSCRIBE)
    assert.equal(await client.publish(channel, `${owner} ${held.token >> 16n}`), 1, 'nobody listened');
    await sleep(100);
    assert.equal(granted, null, 'granted on an old wake-up while the lock was held');
    assert.equal(await client.lLen(`${KEY(name)}:queue`), 1, 'the waiter left the queue');
    await held.release();
    const h = await waiting;
    assert.ok(h.token > held.token);
    await h.release();
    assert.equal(await client.exists(KEY(name)), 0);
  });

  for (const which of ['node-redis', 'ioredis']) {
    it(`${which}: a reply that came while the event loop was blocked past its bound still counts (no false ERR_LOCK_SERVER)`, async () => {
      // A release is bounded by the ttl. Its reply arrives at once, but the
      // loop is blocked (a long synchronous section) past the bound: the
      // bound's timer then runs before the socket is read, and must not
      // take the server for dead.
      const c = which === 'node-redis' ? client : io;
      const lock = new RedisLock(c, fresh('stalled'), { ttl: 100 });
      for (let i = 0; i < 3; i++) {
        const h = await lock.acquire();
        const released = h.release().then(
          () => 'released',
          (e) => e,
        );
        // node-redis writes queued commands from an immediate: this one,
        // queued after it, runs once the RELEASE is on the wire.
        await new Promise((resolve) => setImmediate(resolve));
        const t = Date.now();
        while (Date.now() - t < 250) {}
        assert.equal(await released, 'released');
      }
    });
  }

  it('nothing of a hold, a wait or a lost lease keeps a process alive once the client is closed', () => {
    // Held across renewals, waited for, lost to a paused loop; then the
    // process must exit on its own (a leaked timer or socket would keep it).
    const script = `
      const { RedisLock } = require('interlock/redis');
      const c = require('redis').createClient({ url: argv[0] });
      (async () => {
        await c.connect();
        const lock = new RedisLock(c, argv[1], { ttl: 200 });
        const h = await lock.acquire();
        setTimeout(() => h.release(), 200);
        const h2 = await lock.acquire();
        const t = Date.now(); while (Date.now() - t < 400) {}
        await new Promise((r) => setTimeout(r, 20));
        if (!h2.signal.aborted) throw new Error('a blocked loop past the lease went unnoticed');
        await h2.release();
        await c.close();
        globalThis.closedAt = Date.now();
        process.on('exit', () => console.log('exit ' + (Date.now() - closedAt)));
      })();`;
    const r = spawnSync(process.execPath, evalArgs(script, server.url, fresh('alive')), {
      encoding: 'utf8',
      timeout: 15000,
      cwd: path.join(__dirname, '..'),
    });
    assert.equal(r.status, 0, r.stderr);
    const lingered = Number(/exit (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(lingered < 500, `exited ${lingered} ms after the client closed`);
  });

  it('timeouts and aborts leave no key behind (checked from another client right after)', async () => {
    const name = fresh('timeouts');
    const lock = new RedisLock(client, name, { ttl: 2000 });
    // On a free lock, timeout 0 and an abort racing the grant: granted or rejected, never left held.
    for (let i = 0; i < 20; i++) {
      const ac = new AbortController();
      const p = lock.acquire({ timeout: i % 2 ? 0 : undefined, signal: ac.signal });
      if (i % 2 === 0) setImmediate(() => ac.abort());
      const r = await p.then(
        (h) => h,
        (e) => e,
      );
      if (r instanceof Error) {
        assert.ok(r.code === 'ETIMEDOUT' || r.code === 'ABORT_ERR', r.code);
        assert.equal(await io.exists(KEY(name)), 0, `rejected (${r.code}) yet the key is held`);
      } else await r.release();
    }
    // Waiters behind a holder.
    const holder = await lock.acquire();
    const ac = new AbortController();
    const waits = [
      lock.acquire({ timeout: 50 }),
      lock.acquire({ signal: ac.signal }),
      new RedisLock(io, name).acquire({ timeout: 80 }),
    ];
    setTimeout(() => ac.abort(new Error('bye')), 30);
    const codes = (await Promise.allSettled(waits)).map((r) => r.reason?.code);
    assert.deepEqual(codes, ['ETIMEDOUT', 'ABORT_ERR', 'ETIMEDOUT']);
    await holder.release();
    assert.equal(await io.exists(KEY(name)), 0);
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(lock.acquire({ signal: aborted.signal }), { name: 'AbortError' });
  });

  it("a rejected wait's stack names the function awaiting acquire() or run(), not only the timer that gave up", async () => {
    const name = fresh('stack');
    const lock = new RedisLock(client, name);
    const holder = await lock.acquire();
    // Named functions, looked for in the stack; the timeout is made by a timer callback.
    async function awaitsAcquireHere() {
      return await lock.acquire({ timeout: 30 });
    }
    async function awaitsRunHere() {
      return await lock.run(() => {}, { timeout: 30 });
    }
    try {
      for (const [f, rejected] of [
        [awaitsAcquireHere, awaitsAcquireHere()],
        [awaitsRunHere, awaitsRunHere()],
      ]) {
        const err = await rejected.then(
          () => assert.fail('granted while held'),
          (e) => e,
        );
        assert.equal(err.code, 'ETIMEDOUT');
        assert.match(err.stack, new RegExp(`^LockError: ETIMEDOUT: lock '${name}'`));
        assert.ok(err.stack.includes(f.name), `${f.name} is not in\n${err.stack}`);
      }
    } finally {
      await holder.release();
    }
  });

  it('exclusion across 4 processes and two "hosts": exact counter; the no-lock control loses updates', async function () {
    this.timeout(60000);
    await assertExclusion('redis', server.url, tmpDir());
  });

  it('a SIGKILLed holder: the next waiter gets the lock when its lease runs out', async () => {
    const name = fresh('killed');
    const ttl = 600;
    const holder = startFixture('remote-holder.js', ['hold', 'redis', server.url, name, `${ttl}`], 'held');
    await holder.started;
    const waiting = new RedisLock(client, name).acquire({ timeout: 5000 });
    await sleep(50);
    const killedAt = performance.now();
    holder.child.kill('SIGKILL');
    const h = await waiting;
    const after = performance.now() - killedAt;
    console.log(`      (granted ${after.toFixed(0)} ms after SIGKILL; ttl ${ttl} ms)`);
    assert.ok(after <= ttl + 1000, `${after} ms`);
    await h.release();
  });

  it('a holder paused (SIGSTOP) past its lease: the next holder gets a larger token, the stale write is refused, its signal fires on resume', async () => {
    const name = fresh('paused');
    const holder = startFixture('remote-holder.js', ['hold', 'redis', server.url, name, '300'], 'held');
    await holder.started;
    process.kill(holder.child.pid, 'SIGSTOP');
    const next = await new RedisLock(client, name, { ttl: 5000 }).acquire({ timeout: 5000 });
    // The new holder writes through the counter server's fenced store.
    const store = await openRedisStore(server.url, name);
    await store.write(42, next.token);
    process.kill(holder.child.pid, 'SIGCONT');
    const { code, out: all } = await holder.closed;
    assert.equal(code, 0);
    const held = BigInt(/held (\d+)/.exec(all)[1]);
    assert.ok(next.token > held, `${next.token} after ${held}`);
    assert.match(all, /lost ERR_LOCK_LOST refused/);
    assert.equal(await store.read(), 42);
    await store.remove();
    store.close();
    await next.release();
  });

  describe('server killed or restarted (a private redis-server)', () => {
    let own = null;
    let c = null;

    beforeEach(async function () {
      own = await startRedis();
      // A private server of its own needs the redis-server binary (CI installs it); the reason is printed.
      if (own === null) return needServer(this, 'redis-server not installed');
      c = await nodeRedis(own.url);
    });

    afterEach(async () => {
      c?.destroy(); // close() would wait for a server that is gone
      await own?.stop();
    });

    it('mid-hold, restarted: the holder signal fires with ERR_LOCK_LOST; a waiter then gets the lock', async () => {
      const lock = new RedisLock(c, 'restart', { ttl: 1000 });
      const h = await lock.acquire();
      const lost = new Promise((resolve) => h.signal.addEventListener('abort', () => resolve(h.signal.reason)));
      await own.stop();
      own = await startRedis(own.port);
      const reason = await lost;
      assert.ok(reason instanceof LockError);
      assert.equal(reason.code, 'ERR_LOCK_LOST');
      const h2 = await new RedisLock(c, 'restart', { ttl: 1000 }).acquire({ timeout: 5000 });
      await h.release().catch(() => {}); // compare-and-delete: h2 stays held
      assert.equal(await c.exists(KEY('restart')), 1);
      await h2.release();
    });

    it('a server that takes commands but never answers (SIGSTOP): acquire rejects with ERR_LOCK_SERVER once the ttl has passed', async () => {
      const lock = new RedisLock(c, 'silent', { ttl: 300 });
      await (await lock.acquire()).release();
      // process.kill, not child.kill: Deno's ChildProcess counts a child it
      // sent SIGSTOP as killed, and would then neither resume nor kill it.
      process.kill(own.child.pid, 'SIGSTOP');
      try {
        const t0 = performance.now();
        const err = await lock.acquire().catch((e) => e);
        const ms = performance.now() - t0;
        assert.ok(err instanceof LockError, String(err));
        assert.equal(err.code, 'ERR_LOCK_SERVER');
        assert.match(err.message, /no reply within 300 ms/);
        assert.ok(ms >= 290, `rejected after ${ms} ms, before the ttl`);
      } finally {
        process.kill(own.child.pid, 'SIGCONT');
      }
    });

    it('mid-wait and mid-hold, unreachable: waiter rejects with ERR_LOCK_SERVER, holder signal fires, nothing hangs', async () => {
      const lock = new RedisLock(c, 'gone', { ttl: 1000 });
      const h = await lock.acquire();
      const waiter = lock.acquire().catch((e) => e);
      await sleep(50);
      await own.stop();
      own = null;
      const err = await waiter;
      assert.ok(err instanceof LockError, String(err));
      assert.equal(err.code, 'ERR_LOCK_SERVER');
      await waitFor(() => h.signal.aborted, 5000);
      assert.equal(h.signal.reason.code, 'ERR_LOCK_LOST');
      const released = await h.release().then(
        () => 'resolved',
        (e) => e.code,
      );
      assert.equal(released, 'ERR_LOCK_SERVER');
    });
  });
});
