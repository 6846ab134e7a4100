'use strict';
// Section 5: release in process A -> acquire() settling in process B, on
// process.hrtime.bigint() (CLOCK_MONOTONIC, one clock for every process).
const path = require('node:path');
const floor = require('./floor');
const { quantile } = require('./stats');

const IMPLS = ['filelock', 'sharedmutex', 'semaphore', 'fsne', 'fs-ext', 'os-lock', 'proper-lockfile'];
// The same path in C (bench/floor.c handoff): the lock woken by the release,
// blocking the waiter itself (sync) or a waiter thread that then wakes an
// epoll loop through an eventfd (async, the shape of an acquire() promise).
const FLOORS = [
  { impl: 'c-flock-sync', kind: 'flock', shape: 'sync', label: 'C floor: blocking flock' },
  { impl: 'c-flock-async', kind: 'flock', shape: 'async', label: 'C floor: flock on a thread → eventfd → epoll' },
  { impl: 'c-mutex-sync', kind: 'mutex', shape: 'sync', label: 'C floor: blocking robust mutex' },
  {
    impl: 'c-mutex-async',
    kind: 'mutex',
    shape: 'async',
    label: 'C floor: robust mutex on a thread → eventfd → epoll',
  },
];
// Which floor each lock's async handoff is measured against.
const FLOOR_OF = { sharedmutex: 'c-mutex-async', semaphore: null };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function sample({ pool, ctx, impl }, pauseMs) {
  const a = pool.at(0);
  const b = pool.at(1);
  await a.call('hold', { impl, ctx });
  await b.call('waitOne', { impl, ctx });
  await sleep(pauseMs); // let B's wait park in the kernel
  const t0 = BigInt(await a.call('release'));
  const t1 = await b.call('granted', { boundMs: 10000 });
  if (t1 === null) throw new Error('B was not granted within 10 s');
  return Number(BigInt(t1) - t0) / 1e3;
}

async function handoff({ pool, ctx, cfg, log, floorBin, locks }) {
  // samples: every handoff of every rep, for the distribution chart.
  const rows = IMPLS.filter((impl) => !locks || locks.includes(impl)).map((impl) => ({
    impl,
    floor: impl in FLOOR_OF ? FLOOR_OF[impl] : 'c-flock-async',
    reps: [],
    samples: [],
  }));
  const floors = FLOORS.map((f) => ({ ...f, reps: [], samples: [] }));
  for (let r = 0; r < cfg.reps; r++) {
    log(`rep ${r + 1}/${cfg.reps}`);
    for (const row of rows) {
      if (row.error) continue;
      try {
        const us = [];
        for (let i = 0; i < cfg.handoffSamples; i++)
          us.push(await sample({ pool, ctx, impl: row.impl }, cfg.handoffPauseMs));
        row.reps.push({ p50: quantile(us, 0.5), p99: quantile(us, 0.99) });
        row.samples.push(...us.map((x) => Math.round(x * 10) / 10));
      } catch (err) {
        row.error = err.message.split('\n')[0];
        await pool.stop(2);
      }
    }
    for (const f of floorBin ? floors : []) {
      if (f.error) continue;
      try {
        const lockPath = path.join(ctx.dir, 'handoff-floor.lock');
        const us = floor.handoff(floorBin, f.kind, f.shape, lockPath, cfg.handoffSamples, cfg.handoffPauseMs * 1000);
        f.reps.push({ p50: quantile(us, 0.5), p99: quantile(us, 0.99) });
        f.samples.push(...us);
      } catch (err) {
        f.error = err.message.split('\n')[0];
      }
    }
  }
  rows.push(...floors);
  for (const row of rows) {
    log(`handoff ${row.impl}`, row.error ?? row.reps.map((x) => `${x.p50.toFixed(1)}/${x.p99.toFixed(1)}`));
  }
  return rows;
}

module.exports = { handoff };
