'use strict';
// Section 4: k pending acquire()s in one thread behind a lock another
// process holds. A fresh waiter process per rep, so thread and memory
// baselines are clean.
const path = require('node:path');
const { Child } = require('./pool');

function plan(full) {
  const interlock = full ? [1, 10, 100, 1000, 10000] : [1, 10, 100, 1000, 10000];
  return [
    { impl: 'filelock', ks: interlock },
    { impl: 'sharedmutex', ks: interlock },
    // One fd and one thread per waiter (an OFD lock is owned by its fd).
    { impl: 'fsne', ks: [1, 10, 100, 1000] },
    // Polling: every waiter retries on its own timer.
    { impl: 'proper-lockfile', ks: full ? [1, 10, 100, 1000] : [1, 10, 100] },
    // Blocking calls on libuv's 4-thread pool: 4 waiters take all of it.
    { impl: 'fs-ext', ks: [1, 4] },
    { impl: 'os-lock', ks: [1, 4] },
  ];
}

async function rep({ pool, ctx, cfg, impl, k }) {
  const holder = pool.at(0);
  await holder.call('hold', { impl, ctx });
  const waiter = new Child();
  let released = false;
  try {
    const file = path.join(__dirname, 'floor.c');
    const m = await waiter.call('waitMany', { impl, ctx, k, file, boundMs: cfg.readFileBoundMs }, 120000);
    const t0 = BigInt(await holder.call('release'));
    released = true;
    const t1 = await waiter.call('lastGrant', { boundMs: cfg.lastGrantBoundMs }, cfg.lastGrantBoundMs + 10000);
    return {
      threads: m.during.threads - m.before.threads,
      rssMB: (m.during.rss - m.before.rss) / 2 ** 20,
      readFileBefore: m.before.readFile,
      readFileDuring: m.during.readFile, // null: a read did not finish within the bound
      lastGrantMs: t1 === null ? null : Number(BigInt(t1) - t0) / 1e6,
    };
  } finally {
    await waiter.stop();
    if (!released) await holder.call('release');
  }
}

async function waiting({ pool, ctx, cfg, log }) {
  const rows = [];
  for (const { impl, ks } of plan(cfg.full)) {
    for (const k of ks) {
      const row = { impl, k, reps: [] };
      log(`${impl}, ${k} waiters`);
      try {
        for (let r = 0; r < cfg.reps; r++) row.reps.push(await rep({ pool, ctx, cfg, impl, k }));
      } catch (err) {
        row.error = err.message.split('\n')[0];
        await pool.stop(1);
      }
      log(
        `waiting ${impl} k=${k}`,
        row.error ??
          row.reps.map((x) => `${x.threads}t ${x.readFileDuring?.toFixed(2) ?? 'hung'}ms ${x.lastGrantMs?.toFixed(1)}`),
      );
      rows.push(row);
    }
  }
  return rows;
}

module.exports = { waiting };
