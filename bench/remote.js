#!/usr/bin/env node
'use strict';
// The remote locks side by side on the same servers (issue 13):
//   uncontended acquire+release: round trips and µs per pair;
//   contended, 4 processes × 4 worker threads on one name: acquisitions/s,
//     Jain's index, server commands (or queries) per acquisition;
//   release → next holder's grant latency, p50/p99.
// Medians of several reps. Writes the "Remote locks" section of
// BENCHMARKS.md (between its markers) and prints it.
//   npm run bench:remote [-- --quick]
// Uses REDIS_URL and POSTGRES_URL, or starts private servers with scripts/.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { lockers } = require('./remote-impls');
const { jain, quantile, summary } = require('./stats');

const QUICK = process.argv.includes('--quick');
const REPS = QUICK ? 3 : 5;
const PAIRS = QUICK ? 200 : 500;
const CONTENDED_MS = QUICK ? 2000 : 4000;
const HANDOFFS = QUICK ? 100 : 300;
const ROOT = path.join(__dirname, '..');
const OUT = path.join(ROOT, 'BENCHMARKS.md');
const BEGIN = '<!-- remote:begin (npm run bench:remote) -->';
const END = '<!-- remote:end -->';

const REDIS_UNCONTENDED = ['interlock-redis', 'interlock-ioredis', 'redlock', 'redis-semaphore'];
const PG_UNCONTENDED = ['interlock-pg', 'pg-advisory'];
const CONTENDED = [
  'interlock-redis',
  'interlock-redis-local',
  'redlock',
  'redis-semaphore',
  'interlock-pg',
  'interlock-pg-local',
  'pg-advisory',
];
const HANDOFF = ['interlock-redis', 'redlock', 'redis-semaphore', 'interlock-pg', 'pg-advisory'];

const started = [];

function startServer(kind) {
  const envName = kind === 'redis' ? 'REDIS_URL' : 'POSTGRES_URL';
  if (process.env[envName]) return process.env[envName];
  const state = path.join(os.tmpdir(), `interlock-bench-${kind}-${process.pid}.state`);
  const env = { ...process.env, [`INTERLOCK_${kind.toUpperCase()}_STATE`]: state };
  const script = path.join(ROOT, 'scripts', `${kind}.sh`);
  const r = spawnSync('bash', [script, 'start'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${script} start failed:\n${r.stderr}`);
  started.push(() => spawnSync('bash', [script, 'stop'], { env, stdio: 'ignore' }));
  return new RegExp(`${envName}=(\\S+)`).exec(r.stdout)[1];
}

const isRedis = (impl) => !impl.includes('pg');

/**
 * The locks of one server side by side: all open at once, short batches
 * alternating (the order rotates every round), so that each round's ratios
 * compare neighbours in time; on a shared machine separate runs of each
 * differed by more than the locks do. A rep is BATCHES rounds.
 */
async function uncontended(impls, url) {
  const BATCHES = 10;
  const batch = PAIRS / BATCHES;
  const sides = [];
  for (const impl of impls) {
    const locker = await lockers[impl].open(url, `bench-u-${impl}-${process.pid}`);
    for (let i = 0; i < 50; i++) await locker.pair(); // warm: scripts loaded, connections made
    sides.push({ impl, locker, times: [], trips: [] });
  }
  for (let r = 0; r < REPS * BATCHES; r++) {
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(k + r) % sides.length];
      const c0 = side.locker.queries();
      const t0 = performance.now();
      for (let i = 0; i < batch; i++) await side.locker.pair();
      side.times.push(((performance.now() - t0) * 1000) / batch);
      side.trips.push((side.locker.queries() - c0) / batch);
    }
  }
  for (const side of sides) await side.locker.close();
  return sides.map(({ impl, times, trips }) => ({ impl, times, us: summary(times), trips: summary(trips).median }));
}

/** A contender process; `ready` resolves once its workers are loaded, `done` with their results after go(). */
function contender(impl, url, name, localDir) {
  const args = [path.join(__dirname, 'remote-contender.js'), impl, url, name, `${CONTENDED_MS}`, localDir];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let ready;
  const isReady = new Promise((resolve) => {
    ready = resolve;
  });
  child.stdout.on('data', (d) => {
    out += d;
    if (out.startsWith('ready\n')) ready();
  });
  const done = new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out.slice('ready\n'.length))) : reject(new Error(`${impl}: exit ${code}`)),
    ),
  );
  // A child that dies while loading must not leave the others waiting for it.
  return { ready: Promise.race([isReady, done]), done, go: () => child.stdin.end('go\n') };
}

async function contended(impl, url) {
  const rates = [];
  const fairness = [];
  const perAcq = [];
  for (let r = 0; r < REPS; r++) {
    const localDir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-bench-local-'));
    const name = `bench-c-${impl}-${process.pid}-${r}`;
    const procs = [0, 1, 2, 3].map(() => contender(impl, url, name, localDir));
    await Promise.all(procs.map((p) => p.ready));
    for (const p of procs) p.go();
    const results = (await Promise.all(procs.map((p) => p.done))).flat();
    fs.rmSync(localDir, { recursive: true, force: true });
    const counts = results.map((w) => w.acquisitions);
    const total = counts.reduce((a, b) => a + b, 0);
    const commands = results.reduce((a, w) => a + w.queries, 0);
    rates.push(total / (CONTENDED_MS / 1000));
    fairness.push(jain(counts));
    perAcq.push(commands / Math.max(1, total));
  }
  return { impl, rate: summary(rates), jain: summary(fairness).median, perAcq: summary(perAcq).median };
}

/** Release → grant of a waiter that is already asleep, in one process with two clients. */
async function handoff(impl, url) {
  const name = `bench-h-${impl}-${process.pid}`;
  const a = await lockers[impl].open(url, name);
  const b = await lockers[impl].open(url, name);
  const latencies = [];
  let holders = [a, b];
  let release = await a.hold();
  for (let i = 0; i < HANDOFFS; i++) {
    const next = holders[1].hold();
    await new Promise((resolve) => setTimeout(resolve, 5)); // the waiter is asleep by now
    const t0 = performance.now();
    await release();
    release = await next;
    latencies.push((performance.now() - t0) * 1000);
    holders = [holders[1], holders[0]];
  }
  await release();
  await a.close();
  await b.close();
  return { impl, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

function table(head, rows) {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
}

function report(u, c, h) {
  const best = (rows, pick) => Math.min(...rows.map(pick));
  const redisU = u.filter((r) => isRedis(r.impl));
  const pgU = u.filter((r) => !isRedis(r.impl));
  const uRows = (rows) =>
    rows.map((r) => {
      const peers = rows.filter((p) => !p.impl.startsWith('interlock'));
      const bestPeer = peers.find((p) => p.us.median === best(peers, (q) => q.us.median));
      // The median of the per-round ratios: each compares two batches run side by side.
      const ratio = bestPeer && summary(r.times.map((t, i) => t / bestPeer.times[i])).median;
      return [
        lockers[r.impl].label,
        fmt(r.trips, 1),
        `${fmt(r.us.median)} (${fmt(r.us.q1)}–${fmt(r.us.q3)})`,
        bestPeer ? fmt(ratio, 2) : '',
      ];
    });
  const peerRate = Math.max(
    ...c.filter((r) => isRedis(r.impl) && !r.impl.startsWith('interlock')).map((r) => r.rate.median),
  );
  const cRows = c.map((r) => [
    lockers[r.impl].label,
    `${fmt(r.rate.median)} (${fmt(r.rate.min)}–${fmt(r.rate.max)})`,
    isRedis(r.impl) ? fmt(r.rate.median / peerRate, 2) : '',
    fmt(r.jain, 3),
    fmt(r.perAcq, r.perAcq < 0.1 ? 4 : r.perAcq < 1 ? 2 : 1), // a passed lease sends none: 0.1 would hide the ratio
  ]);
  const load = os.loadavg()[0].toFixed(1);
  return [
    BEGIN,
    '## Remote locks (Redis, PostgreSQL)',
    '',
    `\`npm run bench:remote${QUICK ? ' -- --quick' : ''}\` on ${os.cpus().length} cores, load ${load} at the end,`,
    `redis-server and PostgreSQL on loopback; below, medians of ${REPS} reps (min–max). ${new Date().toISOString().slice(0, 10)}.`,
    'A load well above the core count means other builds and tests shared the machine: every hop between processes',
    'then waits for a core, so compare rows within one run, not with runs elsewhere.',
    '',
    `Uncontended acquire + release: the locks of one server open side by side, ${REPS * 10} rounds of batches of`,
    `${PAIRS / 10} pairs, each round every lock once in turn (the order rotating); µs per pair: the median batch`,
    '(quartiles); × best peer: the median of the per-round ratios to the best peer. Round trips are the requests',
    'the client sent per pair (a Lua script is one; a PostgreSQL query is one).',
    '',
    ...table(['lock', 'round trips', 'µs per pair', '× best peer'], uRows(redisU)),
    '',
    ...table(['lock', 'round trips', 'µs per pair', '× hand-written'], uRows(pgU)),
    '',
    `Contended: 4 processes × 4 worker threads on one name, ${CONTENDED_MS / 1000} s per rep, an empty critical section;`,
    'the 16 workers start counting together, once every one has loaded its client and opened its lock.',
    'Commands per acquisition: requests sent by the lock clients (not counting the SUBSCRIBE of a waiting RedisLock,',
    'once per idle period), per acquisition; `local: true` queues the 16 contenders on one machine-local FileLock first',
    '(RedisLock then passes its held lease among them, for up to 20 ms from each server grant).',
    '',
    ...table(['lock', 'acquisitions/s', '× best Redis peer', "Jain's index", 'commands per acquisition'], cRows),
    '',
    `Release → grant of a waiter already asleep (two clients in one process), ${HANDOFFS} handoffs, from the`,
    "release call to the waiter's grant.",
    '',
    ...table(
      ['lock', 'p50 µs', 'p99 µs'],
      h.map((r) => [lockers[r.impl].label, fmt(r.p50), fmt(r.p99)]),
    ),
    END,
  ].join('\n');
}

async function main() {
  const redisUrl = startServer('redis');
  const pgUrl = startServer('postgres');
  try {
    const u = [];
    u.push(...(await uncontended(REDIS_UNCONTENDED, redisUrl)), ...(await uncontended(PG_UNCONTENDED, pgUrl)));
    const c = [];
    for (const impl of CONTENDED) {
      c.push(await contended(impl, isRedis(impl) ? redisUrl : pgUrl));
      console.error(`contended ${impl}: ${fmt(c.at(-1).rate.median)}/s`);
    }
    const h = [];
    for (const impl of HANDOFF) h.push(await handoff(impl, isRedis(impl) ? redisUrl : pgUrl));
    const section = report(u, c, h);
    const text = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
    const at = text.indexOf(BEGIN);
    const stop = text.indexOf(END);
    const next =
      at >= 0 && stop > at
        ? `${text.slice(0, at)}${section}${text.slice(stop + END.length)}`
        : `${text.trimEnd()}\n\n${section}\n`;
    fs.writeFileSync(OUT, next);
    console.log(section);
  } finally {
    for (const stop of started) stop();
  }
}

main().catch((err) => {
  console.error(err.stack);
  for (const stop of started) stop();
  process.exit(1);
});
