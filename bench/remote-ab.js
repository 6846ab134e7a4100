#!/usr/bin/env node
'use strict';
// Uncontended remote acquire+release pairs, interleaved: one process opens
// every locker it is given (interlock's from two builds, the peers once) on
// the same servers and alternates short batches of them, rotating which
// goes first. Neighbouring batches share the machine's state, so on a noisy
// machine their ratios say more than two separate runs (bench:remote).
// Reports per locker the median µs per pair over batches, and the median of
// the per-round ratios to the first locker listed.
//
//   REDIS_URL=… POSTGRES_URL=… node bench/remote-ab.js [--a DIR] [--b DIR]
//       [--cases interlock-redis,a:interlock-redis,redis-semaphore] [--rounds 30] [--pairs 100]
//
// A case is `[a:|b:]impl` with impl a key of bench/remote-impls.js; a: runs
// it from build A (default: none), b: or no prefix from build B (default: .).
const os = require('node:os');
const path = require('node:path');

function options(argv) {
  const opt = { a: null, b: '.', cases: 'a:interlock-redis,interlock-redis', rounds: 30, pairs: 100 };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  return opt;
}

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const opt = options(process.argv.slice(2));
  const rounds = Number(opt.rounds);
  const pairs = Number(opt.pairs);
  const urls = { redis: process.env.REDIS_URL, pg: process.env.POSTGRES_URL };
  const sides = [];
  for (const c of opt.cases.split(',')) {
    const [build, impl] = c.includes(':') ? c.split(':') : ['b', c];
    const root = build === 'a' ? opt.a : opt.b;
    if (root === null) throw new Error(`${c}: no --a given`);
    const { lockers } = require(path.join(path.resolve(root), 'bench', 'remote-impls.js'));
    if (lockers[impl] === undefined) throw new Error(`unknown impl ${impl}`);
    const url = impl.includes('pg') ? urls.pg : urls.redis;
    if (url === undefined) throw new Error(`${impl}: set ${impl.includes('pg') ? 'POSTGRES_URL' : 'REDIS_URL'}`);
    const locker = await lockers[impl].open(url, `bench-ab-${build}-${impl}-${process.pid}`);
    for (let i = 0; i < 100; i++) await locker.pair(); // scripts loaded, connections made, JIT
    sides.push({ name: c, locker, times: [], trips: 0 });
  }
  const ratios = sides.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = sides.map((_, i) => sides[(i + r) % sides.length]);
    for (const side of order) {
      const q0 = side.locker.queries();
      const t0 = performance.now();
      for (let i = 0; i < pairs; i++) await side.locker.pair();
      side.times.push(((performance.now() - t0) * 1000) / pairs);
      side.trips = (side.locker.queries() - q0) / pairs;
    }
    for (const [i, side] of sides.entries()) ratios[i].push(side.times[r] / sides[0].times[r]);
  }
  for (const side of sides) await side.locker.close();
  console.log(`rounds=${rounds} pairs=${pairs}  A=${opt.a ?? '-'} B=${path.resolve(opt.b)}  load ${load()}`);
  console.log('case                            trips   µs/pair   × first');
  for (const [i, side] of sides.entries()) {
    console.log(
      `${side.name.padEnd(32)}${side.trips.toFixed(1).padStart(5)}${median(side.times).toFixed(0).padStart(10)}` +
        `${median(ratios[i]).toFixed(3).padStart(10)}`,
    );
  }
}

main().catch((err) => {
  console.error(err.stack);
  process.exit(1);
});
