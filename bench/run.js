'use strict';
// `npm run bench` [-- --full] [--only=pairs,contended,waiting,handoff,semaphore] [--out=FILE]
//                 [--locks=filelock,sharedmutex,...] [--baseline=results.json]
// Runs every figure of issues 5 and 14 in this process tree and writes BENCHMARKS.md.
// --locks: contended and handoff figures for these locks only (C floors always).
// --baseline: the results.json of an earlier run (say, before handoff mode), whose
// contended acquisitions/s the issue 14 goals compare against.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const floor = require('./floor');
const { Pool, killAll } = require('./pool');
const { uncontended } = require('./uncontended');
const { contended } = require('./contended');
const { waiting } = require('./waiting');
const { handoff } = require('./handoff');
const { render } = require('./report');
const { drawCharts, DIR: CHART_DIR } = require('./charts');
const { Progress } = require('./progress');

const args = process.argv.slice(2);
const full = args.includes('--full');
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const outArg = args.find((a) => a.startsWith('--out='))?.slice(6);
const locks = args
  .find((a) => a.startsWith('--locks='))
  ?.slice(8)
  .split(',');
const baselineArg = args.find((a) => a.startsWith('--baseline='))?.slice(11);
const SECTIONS = ['pairs', 'contended', 'handoff', 'waiting', 'semaphore'];
const runs = (section) => only === undefined || only.includes(section);
const progress = new Progress(SECTIONS.filter(runs));

const cfg = full
  ? {
      full,
      reps: 10,
      pairMs: 400,
      contendMs: 1000,
      warmMs: 100,
      leadMs: 100,
      readFileBoundMs: 500,
      lastGrantBoundMs: 60000,
      handoffSamples: 300,
      handoffPauseMs: 2,
    }
  : {
      full,
      reps: 5,
      pairMs: 100,
      contendMs: 150,
      warmMs: 30,
      leadMs: 60,
      readFileBoundMs: 500,
      lastGrantBoundMs: 20000,
      handoffSamples: 60,
      handoffPauseMs: 1,
    };

const LAYOUTS = [
  { name: '2 processes', procs: 2, threads: 0 },
  { name: '4 processes', procs: 4, threads: 0 },
  { name: '8 processes', procs: 8, threads: 0 },
  { name: '4 worker threads in 1 process', procs: 1, threads: 4 },
  { name: '4 processes × 4 worker threads', procs: 4, threads: 4 },
];

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const glibc = process.report.getReport().header.glibcVersionRuntime;
  return {
    nproc: os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    memGB: Math.round(os.totalmem() / 2 ** 30),
    libc: glibc ? `glibc ${glibc}` : 'not glibc',
    loadStart: os.loadavg()[0].toFixed(2),
  };
}

function command() {
  const rest = args.length > 0 ? ` ${args.join(' ')}` : '';
  return process.env.npm_lifecycle_event === 'bench'
    ? `npm run bench${rest ? ` --${rest}` : ''}`
    : `node bench/run.js${rest}`;
}

const t0 = Date.now();
function log(what) {
  progress.show(what);
}

async function main() {
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'index.js'))) {
    throw new Error('interlock is not built: run `npm run build` first');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-bench-'));
  const tag = `interlock-bench-${process.pid}`;
  const ctx = { dir, tag };
  const pool = new Pool();
  const res = {
    command: command(),
    date: new Date().toISOString(),
    machine: machine(),
    cfg,
    layouts: [],
    pairs: [],
    contended: [],
    baseline: baselineArg ? { file: baselineArg, ...JSON.parse(fs.readFileSync(baselineArg, 'utf8')) } : null,
    waiting: [],
    handoff: [],
    notes: [],
  };
  const { SharedMutex, Semaphore } = require(path.join(__dirname, '..'));
  try {
    const floorBin = floor.build(dir);
    if (runs('pairs')) {
      progress.section('pairs');
      res.pairs = await uncontended({ ctx, cfg, floorBin, log });
    }
    if (runs('contended')) {
      for (const [i, layout] of LAYOUTS.entries()) {
        progress.section('contended', `${i + 1}/${LAYOUTS.length} ${layout.name}`);
        res.layouts.push(layout.name);
        res.contended.push(...(await contended({ pool, ctx, cfg, layout, floorBin, log, locks })));
      }
    }
    if (runs('handoff')) {
      progress.section('handoff');
      res.handoff = await handoff({ pool, ctx, cfg, log, floorBin, locks });
    }
    if (runs('waiting')) {
      progress.section('waiting');
      res.waiting = await waiting({ pool, ctx, cfg, log });
    }
    if (runs('semaphore')) {
      // Its own process tree (semaphore.js): markdown, placed as it is.
      progress.section('semaphore');
      const script = path.join(__dirname, 'semaphore.js');
      res.semaphore = execFileSync(process.execPath, [script, ...(full ? ['--full'] : [])]).toString();
    }
  } finally {
    await pool.stop();
    for (const suffix of ['mutex', 'data']) {
      try {
        SharedMutex.unlink(`${tag}-${suffix}`);
      } catch {}
    }
    try {
      Semaphore.unlink(`${tag}-sem`);
    } catch {}
    fs.rmSync(dir, { recursive: true, force: true });
  }
  res.machine.loadEnd = os.loadavg()[0].toFixed(2);
  res.seconds = (Date.now() - t0) / 1000;
  const busy = Math.max(Number(res.machine.loadStart), Number(res.machine.loadEnd)) > res.machine.nproc / 2;
  if (busy) {
    res.notes.push(
      'The machine was busy with other work during this run (see load average): treat the figures as rough.',
    );
  }
  const partial = only !== undefined || outArg !== undefined || locks !== undefined;
  const out =
    outArg ?? (only ? path.join(os.tmpdir(), 'BENCHMARKS.partial.md') : path.join(__dirname, '..', 'BENCHMARKS.md'));
  // A partial run draws its charts beside its report, never over the committed ones.
  const chartDir = partial ? path.join(path.dirname(out), 'benchmarks-partial') : CHART_DIR;
  res.charts = (await drawCharts(res, chartDir)).map((c) => ({ ...c, file: path.relative(path.dirname(out), c.file) }));
  fs.mkdirSync(chartDir, { recursive: true });
  fs.writeFileSync(path.join(chartDir, 'results.json'), `${JSON.stringify(res)}\n`);
  // Sections between <!-- NAME:start --> (or :begin) and <!-- NAME:end --> belong
  // to other scripts (bench/web-locks.js, bench/remote.js, bench/ab.js): keep them.
  const kept = fs.existsSync(out)
    ? (fs.readFileSync(out, 'utf8').match(/<!-- ([\w-]+):(?:start|begin)[^>]*-->[\s\S]*?<!-- \1:end -->/g) ?? [])
    : [];
  fs.writeFileSync(out, kept.length > 0 ? `${render(res).trimEnd()}\n\n${kept.join('\n\n')}\n` : render(res));
  progress.done(
    `wrote ${out} and ${res.charts.length} charts in ${chartDir} (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
  );
}

main().catch((err) => {
  console.error(err);
  killAll();
  process.exitCode = 1;
});
