'use strict';
// Soak: every lock kind × every API form, on this process's main thread and
// then inside a Worker. Open fds, native threads, mappings and RSS must stay
// flat: the least-squares slope per 10k cycles of each form stays under a
// bound, and after each run (and after the Worker exits) the counts are back
// where they started.
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { procSample, sleep, tmpDir, regionName, round } = require('./fixtures/common');
const { runSoak, measure } = require('./fixtures/soak-cycles');
const { FileLock, SharedMutex } = require('../..');

// A SharedMutex wait polls for cancellation every 2 ms (native/core/shared_region.cc),
// so its abort and close-while-waiting cycles cost ~1.5 ms each.
const PLAN = { quick: { cheap: 5000, slow: 300 }, full: { cheap: 100000, slow: 5000 } };

// A form fails when its slope per 10k cycles exceeds BOUND and the growth
// that slope predicts over the form's cycles exceeds FLOOR. fds, threads and
// /dev/shm mappings are exact counts (the floor only allows for wait threads,
// which linger ~200 ms). All mappings and RSS also move with V8 and malloc
// (V8 maps its heap in 256 KiB pages; a plain AbortSignal loop with no lock
// adds ~100 mappings and 25 MiB before it levels off), so they get wide
// floors: long forms are judged by the slope, short ones only for gross leaks.
const BOUND = { fds: 0.5, threads: 0.5, shm: 0.5, maps: 8, rss: 1024 * 1024 };
const FLOOR = { fds: 0.5, threads: 3, shm: 0.5, maps: 64, rss: 8 * 1024 * 1024 };
// The steepest slopes reported come from forms with at least this many cycles.
const STEEPEST_MIN_CYCLES = 5000;
// Settled counts (partner thread gone) after a run, against before it.
const END_SLACK = { fds: 0, threads: 0, shm: 0, maps: 48 };

function inWorker(cfg, log) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'fixtures', 'soak-worker.js'), { workerData: cfg });
    let result = null;
    worker.on('message', (msg) => {
      if (msg.log !== undefined) log(`worker: ${msg.log}`);
      else if (msg.error !== undefined) reject(new Error(msg.error));
      else result = msg.result;
    });
    worker.on('error', reject);
    worker.on('exit', () =>
      result === null ? reject(new Error('soak worker exited without a result')) : resolve(result),
    );
  });
}

/** Which counters of form result `f` break their bound (and floor). */
function leaks(f) {
  return Object.keys(BOUND).filter(
    (key) => f.slope[key] > BOUND[key] && (f.slope[key] * f.cycles) / 10000 > FLOOR[key],
  );
}

/**
 * Control: forms that leak on purpose (a FileLock, or a SharedMutex on a
 * fresh name, acquired and never closed) must be flagged by the same rule.
 */
async function control(dir) {
  const kept = [];
  const leakFd = await measure(2000, (i) => {
    const l = new FileLock(path.join(dir, `leak-${i}`));
    l.acquireSync();
    kept.push(l);
  });
  const leakMap = await measure(500, () => {
    const m = new SharedMutex(regionName('leak'), { dataSize: 8 });
    m.acquireSync();
    kept.push(m);
  });
  for (const l of kept) l.close();
  return { fd: leaks(leakFd), shm: leaks(leakMap) };
}

/** Figures and violations for one context's results. */
function judge(where, r, figures, notes) {
  let ok = true;
  const worst = {};
  let cycles = 0;
  for (const f of r.results) {
    cycles += f.cycles;
    for (const key of Object.keys(BOUND)) {
      const s = f.slope[key];
      const judgeable = f.cycles >= STEEPEST_MIN_CYCLES; // shorter fits are mostly noise
      if (judgeable && (worst[key] === undefined || s > worst[key].s)) worst[key] = { s, at: `${f.kind} ${f.form}` };
      if (leaks(f).includes(key)) {
        ok = false;
        notes.push(`${where}: ${f.kind} '${f.form}' ${key} grows ${round(s, 2)} per 10k cycles (bound ${BOUND[key]})`);
      }
    }
  }
  figures[`${where}: cycles`] = cycles;
  figures[`${where}: forms × kinds`] = r.results.length;
  for (const key of Object.keys(BOUND)) {
    const w = worst[key];
    if (w === undefined) continue;
    const unit = key === 'rss' ? ' (KiB)' : '';
    const value = key === 'rss' ? round(w.s / 1024, 1) : round(w.s, 3);
    figures[`${where}: steepest ${key} slope per 10k cycles (forms of ≥ ${STEEPEST_MIN_CYCLES} cycles)${unit}`] =
      `${value} (${w.at})`;
  }
  const mib = (x) => round(x / 2 ** 20, 1);
  for (const [key, label] of [
    ['fds', 'fds'],
    ['threads', 'threads'],
    ['shm', '/dev/shm mappings'],
    ['maps', 'mappings'],
  ]) {
    figures[`${where}: ${label} before → after`] = `${r.base[key]} → ${r.end[key]}`;
    if (r.end[key] - r.base[key] > END_SLACK[key]) {
      ok = false;
      notes.push(`${where}: ${label} ${r.base[key]} before the run, ${r.end[key]} after it settled`);
    }
  }
  figures[`${where}: RSS before → after (MiB)`] = `${mib(r.base.rss)} → ${mib(r.end.rss)}`;
  return ok;
}

async function run({ quick, log }) {
  const plan = PLAN[quick ? 'quick' : 'full'];
  const dir = tmpDir('soak');
  const figures = { 'cycles per cheap form': plan.cheap, 'cycles per waiting form': plan.slow };
  const notes = [];
  let ok = true;

  const c = await control(dir);
  figures['control: a form leaking a FileLock per cycle flagged for'] = c.fd.join(', ') || 'nothing';
  figures['control: a form leaking a SharedMutex per cycle flagged for'] = c.shm.join(', ') || 'nothing';
  if (!c.fd.includes('fds') || !c.shm.includes('shm')) {
    ok = false;
    notes.push('control: a deliberate leak went unflagged, so the bounds prove nothing');
  }

  log(`main thread: ${plan.cheap} cycles per cheap form, ${plan.slow} per waiting form`);
  const main = await runSoak({ dir, ...plan, log });
  ok = judge('main thread', main, figures, notes) && ok;

  await sleep(600);
  const beforeWorker = procSample();
  log('inside a Worker');
  const worker = await inWorker({ dir, ...plan }, log);
  ok = judge('Worker', worker, figures, notes) && ok;
  await sleep(600); // the Worker's wait threads linger ~200 ms after its exit
  const afterWorker = procSample();
  figures['process: threads before the Worker → after it exited'] = `${beforeWorker.threads} → ${afterWorker.threads}`;
  figures['process: fds before the Worker → after it exited'] = `${beforeWorker.fds} → ${afterWorker.fds}`;
  if (afterWorker.threads !== beforeWorker.threads || afterWorker.fds !== beforeWorker.fds) {
    ok = false;
    notes.push('the Worker left threads or fds behind after it exited');
  }
  notes.push(
    `forms: ${main.results
      .filter((r) => r.kind === 'SharedMutex')
      .map((r) => r.form)
      .join(', ')}; for each of FileLock, FileLock shared, SharedMutex and Semaphore (weight 2 of 2 permits)`,
  );
  return { ok, figures, notes };
}

module.exports = {
  name: 'soak',
  budget: { quick: 90, full: 300 },
  // A small, fixed young generation: V8 otherwise grows and shrinks it by
  // tens of MiB with the allocation rate of each form, which swamps RSS slopes.
  execArgv: ['--max-semi-space-size=1'],
  run,
};
