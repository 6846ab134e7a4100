'use strict';
// Sections 2 and 3: loopers in processes, Workers, or both, hammering one
// lock and one shared counter for a fixed time.
const path = require('node:path');
const floor = require('./floor');
const { impls, counterView } = require('./impls');
const { jain, shareSpread, mergeHistograms, histQuantile } = require('./stats');

const now = () => process.hrtime.bigint();

/** The cases of one layout: every impl and form that can run there, then C (given its binary). */
function cases(layout, locks, forms, floors) {
  const where = layout.threads ? 'thread' : 'process';
  const out = [];
  for (const [id, impl] of Object.entries(impls)) {
    if (!impl.where.includes(where) || (locks && !locks.includes(id))) continue;
    for (const mode of impl.forms) {
      if (forms === undefined || forms.includes(mode)) out.push({ label: impl.label, impl: id, mode });
    }
  }
  if (!floors) return out;
  out.push({ label: 'C floor: flock', impl: 'c-flock', mode: 'sync', c: 'flock' });
  out.push({ label: 'C floor: robust mutex', impl: 'c-mutex', mode: 'sync', c: 'mutex' });
  return out;
}

function measure(counts, transfers, counter, elapsedNs, gaps, handoffs = null, sched = null) {
  const total = counts.reduce((a, b) => a + b, 0);
  const seconds = elapsedNs / 1e9;
  const waits = gaps && mergeHistograms(gaps);
  return {
    // Handoff turns per second (issue 14), where the lock counts them.
    handoffsPerSec: handoffs === null ? null : handoffs / seconds,
    // Longest gaps between one looper's acquisitions (µs): its waits.
    waitP99Us: waits ? histQuantile(waits, 0.99) / 1e3 : null,
    waitMaxUs: waits ? waits.max / 1e3 : null,
    acqPerSec: total / seconds,
    transfersPerSec: transfers.reduce((a, b) => a + b, 0) / seconds,
    exact: counter === total,
    jain: jain(counts),
    spread: shareSpread(counts),
    // A looper's share is its takeovers (acquisitions that took the lock
    // from another looper) times its mean run (acquisitions per takeover):
    // which of the two is uneven tells a lock that hands off unevenly from
    // holders that keep it for uneven stretches (see BENCHMARKS.md).
    takeoverSpread: shareSpread(transfers),
    runSpread: shareSpread(counts.map((c, i) => c / Math.max(1, transfers[i]))),
    // Per looper, with its thread's time on a CPU and queued for one (Linux).
    loopers: sched && counts.map((count, i) => ({ count, takeovers: transfers[i], ...sched[i] })),
    shares: counts.map((c) => c / total),
  };
}

/** Turns taken so far on the case's lock; null where the lock (or this build of it) does not count them. */
function handoffsOf(kase, ctx) {
  try {
    return impls[kase.impl].handoffs?.(ctx) ?? null;
  } catch {
    return null;
  }
}

async function nodeRep({ pool, ctx, cfg, layout, kase, shared }, ms = cfg.contendMs) {
  const handoffs = handoffsOf(kase, ctx);
  shared[0] = 0;
  shared[1] = 0;
  const startAt = now() + BigInt(cfg.leadMs) * 1000000n;
  const per = layout.threads || 1;
  const runs = [];
  for (let p = 0; p < layout.procs; p++) {
    const cmd = {
      impl: kase.impl,
      mode: kase.mode,
      startAt: startAt.toString(),
      ms,
      id: p * per + 1,
      threads: layout.threads,
      ctx,
    };
    runs.push(pool.at(p).call('contend', cmd, ms + cfg.leadMs + 30000));
  }
  const results = (await Promise.all(runs)).flat();
  const stopped = results.reduce((m, r) => (BigInt(r.stoppedAt) > m ? BigInt(r.stoppedAt) : m), startAt);
  return measure(
    results.map((r) => r.count),
    results.map((r) => r.transfers),
    shared[0],
    Number(stopped - startAt),
    results.map((r) => r.gaps),
    handoffs === null ? null : handoffsOf(kase, ctx) - handoffs,
    results.every((r) => r.sched) ? results.map((r) => r.sched) : null,
  );
}

function cRep({ ctx, cfg, layout, kase, floorBin }) {
  const r = floor.contend(
    floorBin,
    kase.c,
    path.join(ctx.dir, 'floor.lock'),
    layout.procs,
    layout.threads || 1,
    cfg.contendMs,
  );
  return measure(r.counts, r.transfers, r.counter, r.elapsedNs);
}

/**
 * layout: { name, procs, threads } (threads 0: loop on each child's main thread).
 * locks, forms: only these impls and forms (all when undefined); no C rows without floorBin.
 */
async function contended({ pool, ctx, cfg, layout, floorBin, log, locks, forms }) {
  const shared = counterView(ctx.tag);
  const rows = cases(layout, locks, forms, floorBin !== undefined).map((kase) => ({
    ...kase,
    layout: layout.name,
    reps: [],
  }));
  // Load, open and warm up everything first, so no timed run pays for it.
  const ids = [...new Set(rows.filter((r) => !r.c).map((r) => r.impl))];
  const prepared = [];
  for (let p = 0; p < layout.procs; p++) {
    prepared.push(
      pool.at(p).call('prepare', { impls: ids, ctx, threads: layout.threads, id: p * (layout.threads || 1) + 1 }),
    );
  }
  await Promise.all(prepared);
  for (const row of rows) {
    if (row.c) continue;
    try {
      await nodeRep({ pool, ctx, cfg, layout, kase: row, shared }, cfg.warmMs);
    } catch (err) {
      row.error = err.message.split('\n')[0];
      await pool.stop(layout.procs);
    }
  }
  // Round-robin over the cases, as in uncontended.js.
  for (let r = 0; r < cfg.reps; r++) {
    log(`rep ${r + 1}/${cfg.reps}`);
    for (const row of rows) {
      if (row.error) continue;
      try {
        const args = { pool, ctx, cfg, layout, kase: row, shared, floorBin };
        row.reps.push(row.c ? cRep(args) : await nodeRep(args));
      } catch (err) {
        row.error = err.message.split('\n')[0];
        await pool.stop(layout.procs); // a stuck looper must not poison the next case
      }
    }
  }
  for (const row of rows) {
    log(`contend ${layout.name} ${row.impl} ${row.mode}`, row.error ?? row.reps.map((m) => Math.round(m.acqPerSec)));
  }
  return rows;
}

module.exports = { contended };
