'use strict';
// Web Locks across processes and worker threads: one queue for the whole
// scope (grants in request order, exclusion, query() sees everyone), steal of
// a lock another process holds, and death by SIGKILL or terminate() of
// holders and waiters, which the kernel reports (no timer).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { Worker } = require('node:worker_threads');
const { LockManager, SharedMutex } = require('..');
const {
  startFixture,
  killChildren,
  waitFor,
  within,
  settledThreadCount,
  threadCount,
  sleep,
} = require('./support/helpers');
const LOG = require('./fixtures/web-locks-log');

let n = 0;
const scopes = [];
function scope() {
  const s = `procs-${process.pid}-${n++}`;
  scopes.push(s);
  return s;
}
const regionOf = (s) => `/dev/shm/interlock-weblocks-${process.geteuid()}-${s}`;

const pidOf = (clientId) => Number(clientId.split(':')[0]);
const entries = (q, name) => [...q.held, ...q.pending].filter((i) => i.name === name);

describe('Web Locks across processes and threads', function () {
  this.timeout(45000);
  const logs = [];

  afterEach(killChildren);
  after(() => {
    for (const s of scopes) fs.rmSync(regionOf(s), { force: true });
    for (const l of logs) fs.rmSync(`/dev/shm/${l}`, { force: true });
  });

  async function stress(s, procs, workers, perWorker, nolock) {
    const log = `ilt-${process.pid}-wl-log-${n++}`;
    logs.push(log);
    const m = new SharedMutex(log, { dataSize: LOG.DATA_SIZE });
    const v = new Int32Array(m.data.buffer, m.data.byteOffset, m.data.length / 4);
    const children = [];
    for (let p = 0; p < procs; p++) {
      const args = ['stress', s, log, String(workers), String(perWorker)];
      if (nolock) args.push('nolock');
      children.push(startFixture('web-locks-actor.js', args));
    }
    return { m, v, children };
  }

  /** Holds 'gate' until open(): stress workers request it first, so they start together. */
  async function holdGate(locks) {
    let open;
    const gate = new Promise((r) => {
      open = r;
    });
    await new Promise((granted) => {
      locks.request('gate', () => {
        granted();
        return gate;
      });
    });
    const queued = (count) =>
      waitFor(async () => (await locks.query()).pending.filter((i) => i.name === 'gate').length === count, 30000, 50);
    return { open, queued };
  }

  function records(v) {
    const out = [];
    const count = Atomics.load(v, LOG.RECORDS);
    for (let r = 0; r < count; r++) {
      const at = LOG.RECORD_BASE + r * LOG.RECORD_SIZE;
      out.push({ name: v[at], shared: v[at + 1], before: v[at + 2], after: v[at + 3], grant: v[at + 4] });
    }
    return out;
  }

  it('4 processes x 4 workers: exclusion holds, grants follow request order, a fifth process sees all in query()', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const PER = 25;
    const gate = await holdGate(locks);
    const { v, children } = await stress(s, 4, 4, PER, false);

    // Everyone queues behind the gate this process holds: query() lists 16
    // pending requests from 16 threads of 4 processes, behind our hold.
    assert.ok(await gate.queued(16), 'all 16 workers queued on the gate');
    const q = await locks.query();
    const pending = q.pending.filter((i) => i.name === 'gate');
    assert.equal(new Set(pending.map((i) => i.clientId)).size, 16, 'a clientId per thread');
    assert.deepEqual(
      new Set(pending.map((i) => pidOf(i.clientId))),
      new Set(children.map((c) => c.child.pid)),
      'the 4 processes',
    );
    assert.deepEqual(
      q.held.filter((i) => i.name === 'gate').map((i) => pidOf(i.clientId)),
      [process.pid],
    );
    gate.open();

    const results = await within(Promise.all(children.map((c) => c.exited)), 40000, 'the stress run');
    for (const r of results) assert.equal(r.code, 0, r.err);
    assert.equal(Atomics.load(v, LOG.VIOLATIONS), 0, 'two holders overlapped');
    const recs = records(v);
    assert.equal(recs.length, 16 * PER);
    // FIFO: a request that was in the queue before another one was made is
    // granted first (exclusive-only names, where grants are strictly serial).
    let pairs = 0;
    for (const k of [0, 1]) {
      const rs = recs.filter((r) => r.name === k);
      for (const r1 of rs) {
        for (const r2 of rs) {
          if (r1.after < r2.before) {
            pairs++;
            assert.ok(r1.grant < r2.grant, `queued ${JSON.stringify(r1)} granted after later ${JSON.stringify(r2)}`);
          }
        }
      }
    }
    assert.ok(pairs > 100, `enough ordered pairs to check (${pairs})`);
    assert.deepEqual(entries(await locks.query(), 'x0'), []);
  });

  it('control: the same workers without the lock overlap (the detector works)', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    // Started together, as in the locked run: workers that start slowly one
    // after another (Deno's) could otherwise run their loops apart.
    const gate = await holdGate(locks);
    const { v, children } = await stress(s, 1, 4, 25, true);
    assert.ok(await gate.queued(4), 'all 4 workers queued on the gate');
    gate.open();
    const results = await within(Promise.all(children.map((c) => c.exited)), 30000, 'the control run');
    for (const r of results) assert.equal(r.code, 0, r.err);
    assert.ok(Atomics.load(v, LOG.VIOLATIONS) > 0, 'no overlap seen without the lock');
  });

  it('steal of a lock held by another process: its request() rejects with AbortError there, the stealer runs', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const holder = startFixture('web-locks-actor.js', ['hold', s, 'r'], 'held');
    await holder.started;
    assert.equal(await locks.request('r', { ifAvailable: true }, (l) => l), null);
    let out = '';
    holder.child.stdout.on('data', (d) => {
      out += d;
    });
    assert.equal(
      await within(
        locks.request('r', { steal: true }, (l) => l.name),
        10000,
        'steal',
      ),
      'r',
    );
    assert.ok(await waitFor(() => /lost AbortError/.test(out), 10000), `the holder did not hear of the steal: ${out}`);
  });

  it('SIGKILL of a holder: the next request is granted at once, and query() no longer lists it', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const holder = startFixture('web-locks-actor.js', ['hold', s, 'k'], 'held');
    await holder.started;
    const waiting = locks.request('k', (l) => l.name);
    const q = await locks.query();
    assert.deepEqual(
      q.held.filter((i) => i.name === 'k').map((i) => pidOf(i.clientId)),
      [holder.child.pid],
    );
    holder.child.kill('SIGKILL');
    assert.equal(await within(waiting, 5000, 'grant after the holder died'), 'k');
    const after = await locks.query();
    assert.equal([...after.held, ...after.pending].filter((i) => pidOf(i.clientId) === holder.child.pid).length, 0);
  });

  it('SIGKILL of a waiter ahead in the queue: it leaves the queue; the holder’s successor is the next live one', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const holder = startFixture('web-locks-actor.js', ['hold', s, 'w'], 'held');
    await holder.started;
    const waiter = startFixture('web-locks-actor.js', ['wait', s, 'w'], 'queued');
    await waiter.started;
    const mine = locks.request('w', (l) => l.name);
    waiter.child.kill('SIGKILL');
    await waiter.exited;
    const q = await locks.query();
    assert.equal(entries(q, 'w').filter((i) => pidOf(i.clientId) === waiter.child.pid).length, 0);
    assert.equal(q.pending.filter((i) => i.name === 'w').length, 1, 'only ours is queued');
    holder.child.kill('SIGKILL');
    assert.equal(await within(mine, 5000, 'grant after both died'), 'w');
  });

  it('a waiter sleeping on a holder in another process wakes when that holder dies (no table operation by anyone)', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const holder = startFixture('web-locks-actor.js', ['hold', s, 'z'], 'held');
    await holder.started;
    const waiter = startFixture('web-locks-actor.js', ['wait', s, 'z'], 'queued');
    await waiter.started;
    // Nobody but the kernel tells the waiter: this process stays out of the table.
    holder.child.kill('SIGKILL');
    const r = await within(waiter.exited, 5000, 'the waiter');
    assert.match(r.out, /granted/);
    assert.equal(entries(await locks.query(), 'z').length, 0);
  });

  it('a waiter whose predecessor in the queue is granted and then dies wakes (no table operation by anyone)', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const first = startFixture('web-locks-actor.js', ['hold', s, 'c', 'exclusive', '2500'], 'held');
    await first.started;
    const second = startFixture('web-locks-actor.js', ['hold', s, 'c'], 'held');
    assert.ok(await waitFor(async () => (await locks.query()).pending.length === 1, 5000), 'the second queued');
    const third = startFixture('web-locks-actor.js', ['wait', s, 'c'], 'queued');
    await third.started;
    const q = await locks.query();
    assert.deepEqual(
      entries(q, 'c').map((i) => pidOf(i.clientId)),
      [first.child.pid, second.child.pid, third.child.pid],
      'the third queued while the first still held',
    );
    await second.started; // granted when the first let go: the third now waits on it
    second.child.kill('SIGKILL');
    const r = await within(third.exited, 5000, 'the third');
    assert.match(r.out, /granted/);
  });

  it('terminate() of a worker holding: the next request is granted; of a worker waiting: it leaves the queue', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const fixture = require.resolve('./fixtures/web-locks-actor.js');
    const holder = new Worker(fixture, { workerData: { argv: ['hold', s, 't'] } });
    await new Promise((resolve) => holder.once('message', resolve));
    const waiter = new Worker(fixture, { workerData: { argv: ['wait', s, 't'] } });
    await new Promise((resolve) => waiter.once('message', resolve));
    const mine = locks.request('t', (l) => l.name);
    const q = await locks.query();
    assert.equal(q.held.filter((i) => i.name === 't').length, 1);
    assert.equal(q.pending.filter((i) => i.name === 't').length, 2);
    await waiter.terminate();
    const left = async () => (await locks.query()).pending.filter((i) => i.name === 't').length === 1;
    // Deno's terminate() resolves before the worker has stopped; the addon
    // takes it out of the queue when it really ends.
    assert.ok(await (process.versions.deno ? waitFor(left, 5000) : left()), 'the terminated waiter left the queue');
    await holder.terminate();
    assert.equal(await within(mine, 5000, 'grant after terminate()'), 't');
    assert.equal(locks.liveClients(), 1, 'both workers left the table');
  });
  it('100 pending requests of one thread wait on one native thread; aborting them all leaves nothing queued', async () => {
    const s = scope();
    const locks = new LockManager({ scope: s });
    const holder = startFixture('web-locks-actor.js', ['hold', s, 'many'], 'held');
    await holder.started;
    await locks.query(); // this thread's client exists; no waiter yet
    const base = await settledThreadCount();
    const controllers = [];
    const requests = [];
    for (let i = 0; i < 100; i++) {
      const ac = new AbortController();
      controllers.push(ac);
      requests.push(locks.request('many', { signal: ac.signal }, () => {}).catch((e) => e));
    }
    await sleep(200);
    assert.ok(threadCount() <= base + 1, `${threadCount() - base} threads for 100 pending requests`);
    assert.equal((await locks.query()).pending.length, 100);
    for (const ac of controllers) ac.abort();
    for (const err of await Promise.all(requests)) assert.equal(err.name, 'AbortError');
    assert.deepEqual(
      entries(await locks.query(), 'many').map((i) => pidOf(i.clientId)),
      [holder.child.pid],
    );
  });
});
