'use strict';
// Section 5: release in process A -> acquire() settling in process B, on
// process.hrtime.bigint() (CLOCK_MONOTONIC, one clock for every process).
const { quantile } = require('./stats');

const IMPLS = ['filelock', 'sharedmutex', 'fsne', 'fs-ext', 'os-lock', 'proper-lockfile'];
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

async function handoff({ pool, ctx, cfg, log }) {
  // samples: every handoff of every rep, for the distribution chart.
  const rows = IMPLS.map((impl) => ({ impl, reps: [], samples: [] }));
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
  }
  for (const row of rows) {
    log(`handoff ${row.impl}`, row.error ?? row.reps.map((x) => `${x.p50.toFixed(1)}/${x.p99.toFixed(1)}`));
  }
  return rows;
}

module.exports = { handoff };
