'use strict';
// A/B of uncontended acquire+release pairs between two builds of interlock
// (each a checkout with its build/Release and dist), e.g. the first release
// against this tree. On a shared, noisy machine only a back-to-back
// comparison means anything: every rep runs each build in a fresh process,
// alternating which goes first, and the report gives per-build medians and
// the median of the per-rep ratios B/A, with the load average.
//
//   node bench/ab.js --a /path/to/first-release --b . [--reps 7] [--pairs 20000]
//                    [--cases filelock-sync,filelock-async,filelock-native,mutex-sync,mutex-async]
//                    [--interleave ROUNDS]
//
// With --interleave, each rep is one process that loads both builds and
// alternates short batches of them (pairs / 20 each, ROUNDS of each build):
// neighbouring batches share the machine's state, so a loaded machine (load
// above the CPU count) still gives ratios within about 2% (a build against a
// copy of itself). It reports wall time only.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// A case opens a lock in `root`'s build and gives one pair: `one()` (sync) or
// `await one()` (async).
const facade = (lock, sync) => ({
  sync,
  one: sync ? () => lock.acquireSync().release() : async () => (await lock.acquire()).release(),
  close: () => lock.close(),
});
const mutexName = (tag = '') => `ab-${process.pid}${tag}`;
const cases = {
  'filelock-sync': { open: (lib, dir) => facade(new lib.FileLock(path.join(dir, 'ab.lock')), true) },
  'filelock-async': { open: (lib, dir) => facade(new lib.FileLock(path.join(dir, 'ab.lock')), false) },
  // The binding's hot-path calls alone, without the facade (its queue, handle, checks).
  'filelock-native': {
    open: (_lib, dir, root) => {
      const { native } = require(path.join(path.resolve(root), 'dist', 'native.js'));
      const file = new native.LockFile(path.join(dir, 'ab.lock'), 0o600, true, false);
      const slot = file.slot;
      return {
        sync: true,
        one: () => {
          native.fileTryLock(slot, false);
          native.fileUnlock(slot);
        },
        close: () => file.close(),
      };
    },
  },
  // SharedMutex pairs are ~20x faster than FileLock's: batches of 10x the pairs.
  'mutex-sync': { scale: 10, open: (lib, _dir, _root, tag) => facade(new lib.SharedMutex(mutexName(tag)), true) },
  'mutex-async': { scale: 10, open: (lib, _dir, _root, tag) => facade(new lib.SharedMutex(mutexName(tag)), false) },
};

// In the child: ns per pair, the fastest of 7 batches of `pairs` (x `scale`)
// after a warm-up: the slower ones lost the CPU to other load meanwhile.
async function child(root, name, pairs) {
  const lib = require(path.resolve(root));
  const c = cases[name];
  pairs *= c.scale ?? 1;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-ab-'));
  const { sync, one, close } = c.open(lib, dir, root);
  const batch = sync
    ? () => {
        for (let i = 0; i < pairs; i++) one();
      }
    : async () => {
        for (let i = 0; i < pairs; i++) await one();
      };
  await batch(); // JIT, lazily made threads, the marks region
  const out = [];
  const cpu = process.cpuUsage();
  for (let b = 0; b < 7; b++) {
    const t0 = process.hrtime.bigint();
    await batch();
    out.push(Number(process.hrtime.bigint() - t0) / pairs);
  }
  const used = process.cpuUsage(cpu);
  close();
  if (name.startsWith('mutex')) lib.SharedMutex.unlink(mutexName());
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(
    `${Math.min(...out)} ${(used.user * 1000) / (7 * pairs)} ${(used.system * 1000) / (7 * pairs)}\n`,
  );
}

// In the child, --interleave: both builds, batches alternating (which goes
// first alternates too); each build's fastest batch, and the median of the
// per-round ratios B/A.
async function interleaved(roots, name, pairs, rounds) {
  const c = cases[name];
  pairs = Math.max(1, Math.round((pairs * (c.scale ?? 1)) / 20));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-ab-'));
  const sides = roots.map((root, i) => {
    const lib = require(path.resolve(root));
    const tag = i === 0 ? '-a' : '-b';
    const { sync, one, close } = c.open(lib, fs.mkdtempSync(path.join(dir, tag)), root, tag);
    const batch = sync
      ? () => {
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < pairs; i++) one();
          return Number(process.hrtime.bigint() - t0) / pairs;
        }
      : async () => {
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < pairs; i++) await one();
          return Number(process.hrtime.bigint() - t0) / pairs;
        };
    return { lib, tag, batch, close, times: [] };
  });
  for (let r = 0; r < 20; r++) for (const side of sides) await side.batch(); // JIT, threads, regions
  const ratios = [];
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse()) side.times.push(await side.batch());
    ratios.push(sides[1].times[r] / sides[0].times[r]);
  }
  for (const side of sides) {
    side.close();
    if (name.startsWith('mutex')) side.lib.SharedMutex.unlink(mutexName(side.tag));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${Math.min(...sides[0].times)} ${Math.min(...sides[1].times)} ${median(ratios)}\n`);
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// [wall ns per pair (fastest batch), user CPU ns per pair, system CPU ns per pair]
function run(root, name, pairs) {
  const out = execFileSync(process.execPath, [__filename, '--child', root, name, String(pairs)], { encoding: 'utf8' });
  return out.trim().split(' ').map(Number);
}

// --interleave: one process per rep, both builds in it.
function mainInterleaved(opt, load) {
  console.log("wall ns per pair: medians over reps of each build's fastest batch; B/A: median of the per-round ratios");
  console.log('case              wall A  wall B  B/A    B/A per rep');
  for (const name of opt.cases.split(',')) {
    if (cases[name] === undefined) throw new Error(`unknown case ${name}`);
    const reps = [];
    for (let r = 0; r < Number(opt.reps); r++) {
      const args = [__filename, '--interleaved', opt.a, opt.b, name, String(opt.pairs), String(opt.interleave)];
      reps.push(execFileSync(process.execPath, args, { encoding: 'utf8' }).trim().split(' ').map(Number));
    }
    const [a, b, ratio] = [0, 1, 2].map((k) => median(reps.map((x) => x[k])));
    console.log(
      `${name.padEnd(16)}${a.toFixed(0).padStart(8)}${b.toFixed(0).padStart(8)}  ${ratio.toFixed(3)}    ` +
        reps.map((x) => x[2].toFixed(3)).join(' '),
    );
  }
  console.log(`load ${load()}`);
}

function main(argv) {
  const opt = { a: null, b: '.', reps: 7, pairs: 20000, cases: Object.keys(cases).join(','), interleave: 0 };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (opt.a === null) throw new Error('usage: node bench/ab.js --a DIR [--b DIR] [--reps N] [--pairs N] [--cases ...]');
  const reps = Number(opt.reps);
  const pairs = Number(opt.pairs);
  const load = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(`A=${path.resolve(opt.a)}  B=${path.resolve(opt.b)}  reps=${reps} pairs=${pairs}  load ${load()}`);
  if (Number(opt.interleave) > 0) {
    mainInterleaved(opt, load);
    return;
  }
  console.log('ns per pair, medians of reps; B/A: median of the per-rep ratios');
  console.log('case              wall A  wall B  B/A    user A  user B  B/A    sys A  sys B  B/A    wall B/A per rep');
  const col = (x, w) => x.toFixed(0).padStart(w);
  for (const name of opt.cases.split(',')) {
    if (cases[name] === undefined) throw new Error(`unknown case ${name}`);
    const a = [];
    const b = [];
    for (let r = 0; r < reps; r++) {
      if (r % 2 === 0) {
        a.push(run(opt.a, name, pairs));
        b.push(run(opt.b, name, pairs));
      } else {
        b.push(run(opt.b, name, pairs));
        a.push(run(opt.a, name, pairs));
      }
    }
    const cells = [0, 1, 2].map((k) => {
      const ratios = a.map((x, r) => b[r][k] / x[k]);
      return { a: median(a.map((x) => x[k])), b: median(b.map((x) => x[k])), ratio: median(ratios), ratios };
    });
    const [wall, user, sys] = cells;
    console.log(
      `${name.padEnd(16)}${col(wall.a, 8)}${col(wall.b, 8)}  ${wall.ratio.toFixed(3)}${col(user.a, 8)}${col(user.b, 8)}  ` +
        `${user.ratio.toFixed(3)}${col(sys.a, 7)}${col(sys.b, 7)}  ${sys.ratio.toFixed(3)}    ` +
        wall.ratios.map((q) => q.toFixed(2)).join(' '),
    );
  }
  console.log(`load ${load()}`);
}

if (process.argv[2] === '--interleaved') {
  const [a, b, name, pairs, rounds] = process.argv.slice(3);
  interleaved([a, b], name, Number(pairs), Number(rounds)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4], Number(process.argv[5])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main(process.argv.slice(2));
}
