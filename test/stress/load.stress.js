'use strict';
// Load: 32 processes × 2 worker threads hammer one lock (FileLock, then
// SharedMutex) for a fixed time. The shared counter must equal the sum of
// the increments the workers report; fairness (Jain's index over the
// workers' shares) and handoff latency (release by one thread → grant to
// another) are reported. A short run without the lock first shows the
// counter check catching lost updates.
const fs = require('node:fs');
const path = require('node:path');
const { fork } = require('node:child_process');
const { SharedMutex } = require('../..');
const { now, sleep, tmpDir, regionName, jain, Histogram, round } = require('./fixtures/common');

const PLAN = {
  quick: { procs: 32, workers: 2, seconds: 8, kinds: ['file', 'mutex'] },
  full: { procs: 32, workers: 2, seconds: 30, kinds: ['file', 'mutex'] },
};
const CONTROL_SECONDS = 1;
const LABEL = { file: 'FileLock', mutex: 'SharedMutex' };

/** `procs` load processes of `workers` threads each, kept for several phases. */
async function startPool({ procs, workers, log }) {
  const dir = tmpDir('load');
  const statePath = path.join(dir, 'state');
  fs.writeFileSync(statePath, Buffer.alloc(16));
  const mutexName = regionName('load');
  const mutex = new SharedMutex(mutexName, { dataSize: 16 });
  const cfgBase = { workers, lockPath: path.join(dir, 'lock'), statePath, mutexName };
  const children = [];
  const closed = [];
  let ready = 0;
  let results = [];
  const errors = [];
  const t0 = Date.now();
  for (let procIdx = 0; procIdx < procs; procIdx++) {
    const child = fork(path.join(__dirname, 'fixtures', 'load-proc.js'), [JSON.stringify({ ...cfgBase, procIdx })], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    // 'close', not 'exit': IPC messages can still be on their way at 'exit'.
    closed.push(new Promise((resolve) => child.on('close', resolve)));
    child.on('message', (msg) => {
      if (msg.ready) ready++;
      else if (msg.error !== undefined) errors.push(msg.error);
      else results.push(msg);
    });
  }
  const kill = () => {
    for (const c of children) c.kill('SIGKILL');
  };
  while (ready < procs && Date.now() - t0 < 90000) await sleep(20);
  if (ready < procs) {
    kill();
    throw new Error(`only ${ready} of ${procs} load processes were ready after 90 s`);
  }
  log(`${procs}×${workers} contenders ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  /** One timed phase on `kind`; resolves with every worker's report. */
  async function phase(kind, seconds, nolock = false) {
    fs.writeFileSync(statePath, Buffer.alloc(16));
    mutex.data.fill(0);
    results = [];
    const startNs = now() + 300_000_000n;
    const endNs = startNs + BigInt(seconds * 1e9);
    for (const c of children) c.send({ kind, nolock, startNs: String(startNs), endNs: String(endNs) });
    const by = Date.now() + (seconds + 60) * 1000;
    while (results.length < procs * workers && errors.length === 0 && Date.now() < by) await sleep(20);
    const state = kind === 'mutex' ? Buffer.from(mutex.data) : fs.readFileSync(statePath);
    const hist = new Histogram();
    for (const r of results) hist.merge(Histogram.from(r.hist));
    const counts = results.map((r) => r.count);
    return {
      expected: procs * workers,
      reported: results.length,
      errors: errors.splice(0),
      counter: state.readUInt32LE(0),
      total: counts.reduce((a, b) => a + b, 0),
      self: results.reduce((a, r) => a + r.self, 0),
      counts,
      hist,
    };
  }

  async function stop() {
    for (const c of children) if (c.connected) c.send({ exit: true });
    const timer = setTimeout(kill, 10000);
    await Promise.all(closed);
    clearTimeout(timer);
    mutex.close();
  }
  return { phase, stop };
}

function judge(L, r, plan, figures, notes) {
  let ok = true;
  const ms = (ns) => round(ns / 1e6, 3);
  figures[`${L}: acquisitions`] = r.total;
  figures[`${L}: counter`] = r.counter;
  figures[`${L}: acquisitions per second`] = Math.round(r.total / plan.seconds);
  figures[`${L}: Jain's fairness index (1 = equal shares)`] = round(jain(r.counts), 3);
  figures[`${L}: fewest / most acquisitions by one worker`] = `${Math.min(...r.counts)} / ${Math.max(...r.counts)}`;
  figures[`${L}: re-acquired by the releasing thread`] = `${round((100 * r.self) / Math.max(1, r.total), 1)} %`;
  figures[`${L}: handoffs to another thread`] = r.hist.total;
  figures[`${L}: handoff p50 (ms)`] = ms(r.hist.quantile(0.5));
  figures[`${L}: handoff p99 (ms)`] = ms(r.hist.quantile(0.99));
  figures[`${L}: handoff p99.9 (ms)`] = ms(r.hist.quantile(0.999));
  figures[`${L}: handoff max (ms)`] = ms(r.hist.max);
  if (r.counter !== r.total) {
    ok = false;
    notes.push(`${L}: counter ${r.counter} != ${r.total} increments reported (lost or extra updates)`);
  }
  if (r.reported !== r.expected) {
    ok = false;
    notes.push(`${L}: ${r.reported} of ${r.expected} workers reported`);
  }
  if (r.counts.some((n) => n === 0)) {
    ok = false;
    notes.push(`${L}: ${r.counts.filter((n) => n === 0).length} workers never got the lock (starvation)`);
  }
  if (r.errors.length > 0) {
    ok = false;
    notes.push(...r.errors.slice(0, 5).map((e) => `${L}: ${e}`));
  }
  return ok;
}

async function run({ quick, log }) {
  const plan = PLAN[quick ? 'quick' : 'full'];
  const figures = { 'processes × workers': `${plan.procs} × ${plan.workers}`, 'seconds per lock': plan.seconds };
  const notes = [];
  let ok = true;

  const pool = await startPool({ procs: plan.procs, workers: plan.workers, log });
  try {
    for (const kind of plan.kinds) {
      const c = await pool.phase(kind, CONTROL_SECONDS, true);
      figures[`control without the lock (${LABEL[kind]}): increments lost`] = c.total - c.counter;
      if (c.total - c.counter <= 0) {
        ok = false;
        notes.push(`control (${LABEL[kind]}): no lost updates without the lock, so the counter check proves nothing`);
      }
    }
    for (const kind of plan.kinds) {
      log(`${LABEL[kind]}: ${plan.seconds} s`);
      const r = await pool.phase(kind, plan.seconds);
      ok = judge(LABEL[kind], r, plan, figures, notes) && ok;
    }
  } finally {
    await pool.stop();
  }
  notes.push(
    'handoff: a thread records the monotonic time just before release; the next holder, if another thread, subtracts it from its own grant time (bucketed to ±6%).',
  );
  return { ok, figures, notes };
}

module.exports = { name: 'load', budget: { quick: 75, full: 200 }, run };
