'use strict';
// `node bench/web-locks.js [--reps=N] [--ms=N]`: the Web Locks figures of
// issue 12, written to their own section of BENCHMARKS.md (bench/run.js
// keeps that section when it rewrites the rest):
//   uncontended `await locks.request(name, async () => {})` beside Node 24's
//   built-in navigator.locks and FileLock.run; 4 processes x 4 workers
//   contending on one name (requests/s, Jain's index, max/min share); handoff
//   latency between two processes. Medians of the reps.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { median, quantile, jain, shareSpread } = require('./stats');

const root = path.join(__dirname, '..');
const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const REPS = arg('reps', 5);
const MS = arg('ms', 300);
const CHILD = path.join(__dirname, 'web-locks-child.js');
const { LockManager, SharedMutex } = require(root);

function node24() {
  const r = spawnSync('bash', [path.join(root, 'scripts/runtimes.sh'), 'install', 'node24'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Runs a child role; resolves with its JSON lines. */
function child(args, exe = process.execPath) {
  return new Promise((resolve, reject) => {
    const c = spawn(exe, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    c.stdout.on('data', (d) => {
      text += d;
    });
    c.on('exit', (code) =>
      code === 0
        ? resolve(
            text
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l)),
          )
        : reject(new Error(`${args.join(' ')}: exit ${code}`)),
    );
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Holds `gate` in `scope` until `count` requests queue behind it, then runs `before` and opens it. */
async function gated(scope, count, start, before) {
  const locks = new LockManager({ scope });
  let open;
  const gate = new Promise((r) => {
    open = r;
  });
  await new Promise((held) => {
    locks.request('gate', () => {
      held();
      return gate;
    });
  });
  const running = start();
  while ((await locks.query()).pending.filter((i) => i.name === 'gate').length < count) await sleep(20);
  before();
  open();
  return running;
}

function region(scope) {
  return `/dev/shm/interlock-weblocks-${process.geteuid()}-${scope}`;
}

async function uncontended(n24, dir) {
  const rows = [
    { label: 'interlock `locks.request` (Node 20)', impl: 'interlock', exe: process.execPath },
    { label: 'interlock `FileLock.run` (Node 20)', impl: 'filelock', exe: process.execPath },
  ];
  if (n24) {
    rows.push({ label: 'interlock `locks.request` (Node 24)', impl: 'interlock', exe: n24 });
    rows.push({ label: 'Node 24 built-in `navigator.locks.request` (one process only)', impl: 'builtin', exe: n24 });
  }
  for (const row of rows) row.reps = [];
  for (let r = 0; r < REPS; r++) {
    for (const row of rows) row.reps.push((await child(['pairs', row.impl, String(MS), dir], row.exe))[0].nsPerOp);
  }
  return rows.map((row) => ({ ...row, ns: median(row.reps) }));
}

async function contended(tag) {
  const reps = [];
  for (let r = 0; r < REPS; r++) {
    const scope = `${tag}-c${r}`;
    const log = `${tag}-log-c${r}`;
    const v = shared(log);
    const procs = () => Promise.all([0, 1, 2, 3].map(() => child(['contend', scope, log, '4'])));
    let startedAt = 0;
    const results = await gated(scope, 16, procs, () => {
      startedAt = Date.now();
      v.view[0] = startedAt + MS;
    });
    const counts = results.flatMap((lines) => lines[0].counts);
    const total = counts.reduce((a, b) => a + b, 0);
    reps.push({ rate: total / (MS / 1000), jain: jain(counts), spread: shareSpread(counts) });
    v.close();
    fs.rmSync(region(scope), { force: true });
  }
  return {
    rate: median(reps.map((x) => x.rate)),
    jain: median(reps.map((x) => x.jain)),
    spread: median(reps.map((x) => x.spread)),
  };
}

async function handoff(tag) {
  const p50 = [];
  const p99 = [];
  for (let r = 0; r < Math.max(3, Math.ceil(REPS / 2)); r++) {
    const scope = `${tag}-h${r}`;
    const log = `${tag}-log-h${r}`;
    const v = shared(log);
    const results = await gated(
      scope,
      2,
      () => Promise.all([0, 1].map(() => child(['handoff', scope, log, '200']))),
      () => {},
    );
    const lat = results.flatMap((lines) => lines[0].lat).map((ns) => ns / 1000);
    p50.push(quantile(lat, 0.5));
    p99.push(quantile(lat, 0.99));
    v.close();
    fs.rmSync(region(scope), { force: true });
  }
  return { p50: median(p50), p99: median(p99) };
}

function shared(log) {
  const m = new SharedMutex(log, { dataSize: 4096 });
  const view = new Float64Array(m.data.buffer, m.data.byteOffset, 512);
  return {
    view,
    close: () => {
      m.close();
      SharedMutex.unlink(log);
    },
  };
}

function render(u, c, h, n24) {
  const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  const builtin = u.find((r) => r.impl === 'builtin');
  const lines = [
    '<!-- web-locks:start -->',
    '## Web Locks across processes (issue 12)',
    '',
    `\`node bench/web-locks.js --reps=${REPS} --ms=${MS}\` — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)} at the end; medians of ${REPS} reps, each in a fresh process.`,
    '',
    '| uncontended `await request(name, async () => {})` | ns per request | vs Node 24 built-in |',
    '| --- | --- | --- |',
    ...u.map((r) => `| ${r.label} | ${fmt(r.ns)} | ${builtin ? `${fmt(r.ns / builtin.ns, 2)}×` : '–'} |`),
    '',
    '| 4 processes × 4 workers on one name | |',
    '| --- | --- |',
    `| requests/s (all 16 threads) | ${fmt(c.rate)} |`,
    `| Jain's index over the 16 threads | ${fmt(c.jain, 3)} |`,
    `| max/min share | ${fmt(c.spread, 2)} |`,
    '',
    '| handoff between two processes (release → the waiter’s callback) | µs |',
    '| --- | --- |',
    `| p50 | ${fmt(h.p50, 1)} |`,
    `| p99 | ${fmt(h.p99, 1)} |`,
    '',
    n24
      ? 'The built-in spans one process only; interlock spans every process and thread of the user.'
      : 'Node 24 was not installed (scripts/runtimes.sh), so the built-in row is missing.',
    'Contended grants are FIFO across processes, so shares are nearly equal; each handoff wakes the next',
    "waiter's thread through its futex doorbell and then its event loop, which bounds requests/s.",
    '<!-- web-locks:end -->',
  ];
  return lines.join('\n');
}

async function main() {
  const n24 = node24();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-wl-bench-'));
  const tag = `ilb-${process.pid}`;
  try {
    const u = await uncontended(n24, dir);
    const c = await contended(tag);
    const h = await handoff(tag);
    const section = render(u, c, h, n24);
    console.log(section);
    const file = path.join(root, 'BENCHMARKS.md');
    const text = fs.readFileSync(file, 'utf8');
    const re = /<!-- web-locks:start -->[\s\S]*<!-- web-locks:end -->/;
    fs.writeFileSync(file, re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
