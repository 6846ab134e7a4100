'use strict';
// A/B of one contended layout between two builds of interlock, e.g. the first
// release against this tree (issue 14's "at least 75% of the first release").
// A contended rep swings by 10x on a shared 2-CPU machine, so two separate
// runs say little: here the builds' reps alternate in one process tree (which
// goes first alternates too), and the report gives the median of each build's
// reps and the median and geometric mean of the per-rep ratios B/A, with the load,
// how uneven the loopers' takeovers and runs are (contended.js, measure), and
// the handoff turns per second where a build counts them.
//
//   node bench/ab-contended.js --a DIR --b DIR --layout 4x4 [--locks sharedmutex,filelock]
//                              [--forms async] [--reps 12] [--ms 150]
//
// Each DIR holds a build (dist/, build/Release) and this bench/ directory (copy
// it into an older checkout): each build runs its own loopers and lays out its
// own regions. --layout PxT: P processes of T worker threads each (T 0: the
// processes' main threads).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median } = require('./stats');

function parse(argv) {
  const opt = { a: null, b: null, layout: '4x4', locks: 'sharedmutex,filelock', forms: null, reps: 12, ms: 150 };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (opt.a === null || opt.b === null) throw new Error('usage: node bench/ab-contended.js --a DIR --b DIR [...]');
  const [procs, threads] = opt.layout.split('x').map(Number);
  return {
    roots: [opt.a, opt.b].map((r) => path.resolve(r)),
    layout: { name: opt.layout, procs, threads },
    locks: opt.locks.split(','),
    forms: opt.forms?.split(','),
    reps: Number(opt.reps),
    cfg: { reps: 1, contendMs: Number(opt.ms), warmMs: 30, leadMs: 60 },
  };
}

const fixed = (x) => (x === Number.POSITIVE_INFINITY ? 'inf' : Number.isFinite(x) ? x.toFixed(1) : '-');
const whole = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const geomean = (xs) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

async function main() {
  const { roots, layout, locks, forms, reps, cfg } = parse(process.argv.slice(2));
  const loadStart = load();
  const sides = roots.map((root, i) => {
    const { Pool } = require(path.join(root, 'bench', 'pool.js'));
    const { contended } = require(path.join(root, 'bench', 'contended.js'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-abc-'));
    return {
      root,
      pool: new Pool(),
      contended,
      ctx: { dir, tag: `interlock-abc-${process.pid}-${i}` },
      reps: new Map(),
    };
  });
  const noLog = () => {};
  try {
    for (let r = 0; r < reps; r++) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
        const args = { pool: side.pool, ctx: side.ctx, cfg, layout, log: noLog, locks, forms };
        for (const row of await side.contended(args)) {
          const key = `${row.impl} ${row.mode}`;
          if (!side.reps.has(key)) side.reps.set(key, []);
          side.reps.get(key).push(row.error === undefined ? row.reps[0] : null);
        }
      }
    }
  } finally {
    for (const side of sides) {
      await side.pool.stop();
      const { SharedMutex, Semaphore } = require(side.root); // regions of its own layout
      for (const suffix of ['mutex', 'data']) {
        try {
          SharedMutex.unlink(`${side.ctx.tag}-${suffix}`);
        } catch {}
      }
      try {
        Semaphore?.unlink(`${side.ctx.tag}-sem`);
      } catch {}
      fs.rmSync(side.ctx.dir, { recursive: true, force: true });
    }
  }
  console.log(`A=${roots[0]}  B=${roots[1]}  layout ${layout.name}, ${reps} reps of ${cfg.contendMs} ms each`);
  console.log(
    'case                 acq/s A    acq/s B   B/A per rep: median / geomean   Jain A/B    max/min A/B' +
      '   takeovers max/min A/B   run max/min A/B   handoffs/s A/B',
  );
  for (const [key, a] of sides[0].reps) {
    const b = sides[1].reps.get(key) ?? [];
    const pairs = a.map((m, i) => [m, b[i]]).filter(([x, y]) => x && y);
    if (pairs.length === 0) {
      console.log(`${key.padEnd(18)} failed`);
      continue;
    }
    // A missing figure (a bench/ or build that does not count it) prints as '-'.
    const med = (k, side) => {
      const xs = pairs.map((p) => p[side][k]);
      return xs.every((x) => typeof x === 'number') ? median(xs) : Number.NaN;
    };
    const ratios = pairs.map(([x, y]) => y.acqPerSec / x.acqPerSec);
    const cols = [
      key.padEnd(18),
      med('acqPerSec', 0).toFixed(0).padStart(10),
      med('acqPerSec', 1).toFixed(0).padStart(10),
      `  ${median(ratios).toFixed(2)} / ${geomean(ratios).toFixed(2)} (${ratios.filter((x) => x < 1).length}/${ratios.length} < 1)`.padEnd(
        27,
      ),
      `${med('jain', 0).toFixed(2)} / ${med('jain', 1).toFixed(2)}`.padStart(14),
      `${med('spread', 0).toFixed(1)} / ${med('spread', 1).toFixed(1)}`.padStart(15),
      `${fixed(med('takeoverSpread', 0))} / ${fixed(med('takeoverSpread', 1))}`.padStart(26),
      `${fixed(med('runSpread', 0))} / ${fixed(med('runSpread', 1))}`.padStart(18),
      `${whole(med('handoffsPerSec', 0))} / ${whole(med('handoffsPerSec', 1))}`.padStart(17),
    ];
    console.log(cols.join(''));
  }
  console.log(`load ${loadStart} at the start, ${load()} at the end`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
