'use strict';
// One contended looper: from `startAt` for `ms`, acquire -> read-modify-write
// the shared counter -> release, counting acquisitions and how many of them
// took the lock over from another looper. Runs in a child process or a Worker.
const fs = require('node:fs');
const { impls, counterView } = require('./impls');
const { histogram } = require('./stats');

const opened = new Map();
const views = new Map();

function openImpl(id, ctx) {
  const key = `${id}:${ctx.tag}`;
  let lock = opened.get(key);
  if (lock === undefined) {
    lock = impls[id].open({ ...ctx, contended: true });
    opened.set(key, lock);
  }
  return lock;
}

function view(tag) {
  let v = views.get(tag);
  if (v === undefined) {
    v = counterView(tag);
    views.set(tag, v);
  }
  return v;
}

const now = () => process.hrtime.bigint();

function sleepUntil(t) {
  const ms = Number(t - now()) / 1e6;
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

// Gaps between one looper's successive acquisitions (ns): its wait, plus
// its own short section. Stored raw (one write per round), binned after.
let gaps = new Float64Array(1 << 16);
function recordGap(i, ns) {
  if (i === gaps.length) {
    const bigger = new Float64Array(gaps.length * 2);
    bigger.set(gaps);
    gaps = bigger;
  }
  gaps[i] = ns;
}

// This thread's scheduler counters (Linux): ns on a CPU, ns runnable on a
// run queue, timeslices. Over a rep they tell a looper the scheduler kept
// off the CPU from one the lock kept waiting (bench/fairness-profile.js).
function schedstat() {
  try {
    return fs.readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ').map(Number);
  } catch {
    return null;
  }
}

/** cmd: { impl, mode, startAt (ns string), ms, id, ctx } */
async function contend(cmd) {
  const lock = openImpl(cmd.impl, cmd.ctx)[cmd.mode];
  const shared = view(cmd.ctx.tag);
  const me = cmd.id;
  const start = BigInt(cmd.startAt);
  const end = start + BigInt(cmd.ms) * 1000000n;
  await sleepUntil(start);
  let count = 0;
  let transfers = 0;
  const sched = schedstat();
  let last = now();
  if (cmd.mode === 'sync') {
    for (;;) {
      const t = now();
      if (t >= end) break;
      recordGap(count, Number(t - last));
      last = t;
      const token = lock.lock();
      const v = shared[0];
      shared[0] = v + 1;
      if (shared[1] !== me) {
        transfers++;
        shared[1] = me;
      }
      lock.unlock(token);
      count++;
    }
  } else {
    for (;;) {
      const t = now();
      if (t >= end) break;
      recordGap(count, Number(t - last));
      last = t;
      const token = await lock.lock();
      const v = shared[0];
      shared[0] = v + 1;
      if (shared[1] !== me) {
        transfers++;
        shared[1] = me;
      }
      const u = lock.unlock(token);
      if (u !== undefined) await u;
      count++;
    }
  }
  const stoppedAt = now();
  const schedEnd = schedstat();
  // The wait still running when time was up counts too.
  recordGap(count, Number(stoppedAt - last));
  return {
    count,
    transfers,
    stoppedAt: stoppedAt.toString(),
    gaps: histogram(gaps.subarray(0, count + 1)),
    sched: sched && schedEnd && { cpuNs: schedEnd[0] - sched[0], queuedNs: schedEnd[1] - sched[1] },
  };
}

/** Opens the locks and the counter ahead of the timed runs. */
function prepare({ impls: ids, ctx }) {
  for (const id of ids) openImpl(id, ctx);
  view(ctx.tag);
  return true;
}

module.exports = { contend, prepare, sleepUntil, now };
