'use strict';
// Per-looper profile of one contended layout (issue 14): is a row's spread the
// scheduler's or the lock's? For each looper of each rep: its share, its
// takeovers (acquisitions that took the lock from another looper) and run
// (acquisitions per takeover), and from its thread's schedstat the part of
// the rep it spent on a CPU, queued for one, and asleep (waiting for the lock,
// as a looper does nothing else). If the starved loopers are the ones that sat
// queued, the spread is the CPU's; if their runs are short, it is how the lock
// passes. Linux only (/proc/thread-self/schedstat).
//
//   node bench/fairness-profile.js [--layout 4x4] [--locks filelock,sharedmutex] [--forms async,sync]
//                                  [--reps 3] [--ms 300]
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Pool } = require('./pool');
const { contended } = require('./contended');

function parse(argv) {
  const opt = { layout: '4x4', locks: 'filelock,sharedmutex', forms: 'async,sync', reps: 3, ms: 300 };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  const [procs, threads] = opt.layout.split('x').map(Number);
  return {
    layout: { name: opt.layout, procs, threads },
    locks: opt.locks.split(','),
    forms: opt.forms.split(','),
    cfg: { reps: Number(opt.reps), contendMs: Number(opt.ms), warmMs: 30, leadMs: 60 },
  };
}

function pearson(xs, ys) {
  const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? Number.NaN : sxy / Math.sqrt(sxx * syy);
}

const pct = (ns, ms) => ((100 * ns) / (ms * 1e6)).toFixed(1).padStart(7);
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

function print(row, ms) {
  for (const [r, m] of row.reps.entries()) {
    const loopers = m.loopers;
    if (!loopers) {
      console.log(`${row.impl} ${row.mode}: no schedstat here`);
      return;
    }
    const total = loopers.reduce((a, l) => a + l.count, 0);
    const col = { share: [], cpu: [], queued: [], run: [] };
    console.log(`\n${row.impl} ${row.mode}, rep ${r + 1}: ${Math.round(m.acqPerSec)} acq/s, Jain ${m.jain.toFixed(2)}`);
    console.log('  share  takeovers      run   on CPU %   queued %   asleep %');
    for (const l of [...loopers].sort((a, b) => a.count - b.count)) {
      const share = (l.count * loopers.length) / total;
      const run = l.count / Math.max(1, l.takeovers);
      const asleep = ms * 1e6 - l.cpuNs - l.queuedNs;
      console.log(
        `  ${share.toFixed(2).padStart(5)} ${String(l.takeovers).padStart(10)} ${run.toFixed(1).padStart(8)}` +
          `${pct(l.cpuNs, ms)}    ${pct(l.queuedNs, ms)}    ${pct(asleep, ms)}`,
      );
      col.share.push(share);
      col.cpu.push(l.cpuNs);
      col.queued.push(l.queuedNs);
      col.run.push(run);
    }
    const c = (k) => pearson(col.share, col[k]).toFixed(2);
    console.log(`  correlation of share with: on CPU ${c('cpu')}, queued ${c('queued')}, run ${c('run')}`);
  }
}

async function main() {
  const { layout, locks, forms, cfg } = parse(process.argv.slice(2));
  const loadStart = load();
  const pool = new Pool();
  const ctx = { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-fp-')), tag: `interlock-fp-${process.pid}` };
  try {
    const rows = await contended({ pool, ctx, cfg, layout, log: () => {}, locks, forms });
    for (const row of rows) {
      if (row.error !== undefined) console.log(`${row.impl} ${row.mode}: ${row.error}`);
      else print(row, cfg.contendMs);
    }
  } finally {
    await pool.stop();
    const { SharedMutex, Semaphore } = require('..');
    for (const suffix of ['mutex', 'data']) {
      try {
        SharedMutex.unlink(`${ctx.tag}-${suffix}`);
      } catch {}
    }
    try {
      Semaphore.unlink(`${ctx.tag}-sem`);
    } catch {}
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  }
  console.log(
    `\nlayout ${layout.name}, ${cfg.contendMs} ms reps; load ${loadStart} at the start, ${load()} at the end`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
