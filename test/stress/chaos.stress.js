'use strict';
// Chaos: 4 processes × 2 worker threads contend on one FileLock and one
// SharedMutex while this driver SIGKILLs processes whose worker holds a lock,
// and terminates holding and waiting workers, respawning all of them. The
// journals (chaos-hold.js) are then checked (chaos-check.js). A control run
// without the locks first proves the checks can fail.
const fs = require('node:fs');
const path = require('node:path');
const { fork, spawn } = require('node:child_process');
const { FileLock, SharedMutex } = require('../..');
const { now, sleep, tmpDir, regionName, int32View, round } = require('./fixtures/common');
const hold = require('./fixtures/chaos-hold');
const { check, procOf, selfTest } = require('./fixtures/chaos-check');
const { semaphoreChaos, PERMITS } = require('./fixtures/semaphore-chaos');

const PROCS = 4;
const WORKERS = 2;
const MAX_GAP_MS = 1000;
const DRIVER_ID = 1; // procIdx 0: never killed

const PLAN = {
  quick: {
    kills: 40,
    terminateHolding: 15,
    terminateWaiting: 15,
    seconds: 45,
    controlSeconds: 1.5,
    stormSeconds: 3,
    semaphore: { events: 20, seconds: 8 },
  },
  full: {
    kills: 200,
    terminateHolding: 60,
    terminateWaiting: 60,
    seconds: 200,
    controlSeconds: 3,
    stormSeconds: 10,
    semaphore: { events: 120, seconds: 45 },
  },
};

/**
 * Regression: terminate() landing inside a contended acquire() (lockAsync)
 * crashed the whole process (SIGSEGV in WaitObject::Wrap, or a fatal
 * "Error::New napi_get_last_error_info" abort). Runs teardown-storm.js.
 */
function storm(kind, seconds) {
  const dir = tmpDir('storm');
  const base = kind === 'mutex' ? regionName('storm') : path.join(dir, 'lock');
  const script = path.join(__dirname, 'fixtures', 'teardown-storm.js');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, kind, base, String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // A crashed storm leaves its regions behind.
      if (kind === 'mutex') for (let i = 0; i < 16; i++) fs.rmSync(`/dev/shm/${base}-${i}`, { force: true });
      const done = /done (\d+)/.exec(out);
      const fatal = /FATAL ERROR: .*/.exec(err)?.[0];
      resolve({ ok: code === 0 && done !== null, terminations: done ? Number(done[1]) : 0, code, signal, fatal });
    });
  });
}

/** One run: spawn, (maybe) cause chaos, stop, check. */
async function phase({ nolock, plan, log }) {
  const dir = tmpDir('chaos');
  const f = hold.files(dir);
  fs.writeFileSync(f.counter, Buffer.alloc(4));
  const detName = regionName('det');
  const mutexName = regionName('mutex');
  const det = new SharedMutex(detName, { dataSize: hold.DET_SIZE });
  const words = int32View(det.data);
  const mutex = new SharedMutex(mutexName, { dataSize: hold.MUTEX_DATA });

  const deaths = [];
  const errors = [];
  const procs = new Map(); // procIdx -> { child, ids: Set, ready, dying }
  let nextProc = 1;
  let running = true;

  function spawnProc() {
    const procIdx = nextProc++;
    const cfg = { procIdx, workers: WORKERS, dir, mutexName, detName, nolock };
    const child = fork(path.join(__dirname, 'fixtures', 'chaos-proc.js'), [JSON.stringify(cfg)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const p = { procIdx, child, ids: new Set(), dying: false };
    procs.set(procIdx, p);
    // A child SIGKILLed a moment ago still reads `connected` until its pipe's
    // close is seen, and a send to it then fails with EPIPE: an 'error' event
    // that, unheard, ended this driver. Its 'exit' tells what matters.
    child.on('error', () => {});
    child.on('message', (msg) => {
      if (msg.ev === 'ready') p.ids.add(msg.id);
      else if (msg.ev === 'terminated') {
        p.ids.delete(msg.id);
        const d = deaths.find((x) => x.id === msg.id && x.tDone === null);
        if (d !== undefined) d.tDone = msg.missing ? d.tReq : BigInt(msg.tDone);
      } else if (msg.ev === 'error') {
        errors.push(`worker ${msg.id}: ${msg.msg}`);
        // Replace the whole process, so the chaos goes on with full contenders.
        if (!p.dying && running) {
          p.dying = true;
          deaths.push({ procIdx, tReq: now(), tDone: null });
          child.kill('SIGKILL');
        }
      }
    });
    child.on('exit', (code, signal) => {
      procs.delete(procIdx);
      for (const d of deaths) if (d.procIdx === procIdx && d.tDone === null) d.tDone = now();
      if (!p.dying && running) {
        // A crash, not a planned kill: its holders die unannounced, so entries
        // after them may also be reported as overlaps.
        errors.push(`process ${procIdx} exited (${code ?? signal}) on its own`);
        deaths.push({ procIdx, tReq: now(), tDone: now() });
      }
      if (running) spawnProc();
    });
    return p;
  }

  for (let i = 0; i < PROCS; i++) spawnProc();
  const readyAll = Date.now() + 30000;
  while ([...procs.values()].some((p) => p.ids.size < WORKERS) && Date.now() < readyAll) await sleep(20);

  // Progress clock: the longest time either lock went without a completed section.
  const progress = { file: { n: 0, at: Date.now(), maxGap: 0 }, mutex: { n: 0, at: Date.now(), maxGap: 0 } };
  const watch = setInterval(() => {
    for (const [kind, slot] of [
      ['file', hold.DET_FILE_DONE],
      ['mutex', hold.DET_MUTEX_DONE],
    ]) {
      const p = progress[kind];
      const n = Atomics.load(words, slot);
      const t = Date.now();
      if (n !== p.n) {
        p.n = n;
        p.at = t;
      }
      p.maxGap = Math.max(p.maxGap, t - p.at);
    }
  }, 10);

  const done = { kills: 0, terminateHolding: 0, terminateWaiting: 0 };
  const started = Date.now();
  const limit = started + plan.seconds * 1000;
  const live = () => [...procs.values()].filter((p) => !p.dying && p.ids.size === WORKERS);

  /** The id inside either lock right now, polled for up to `ms`. */
  async function holderId(ms) {
    const end = Date.now() + ms;
    for (;;) {
      const slot = Math.random() < 0.5 ? hold.DET_FILE : hold.DET_MUTEX;
      const id = Atomics.load(words, slot) || Atomics.load(words, slot ^ 1);
      if (id !== 0 || Date.now() > end) return id;
      await sleep(1);
    }
  }

  function terminate(p, id) {
    deaths.push({ id, tReq: now(), tDone: null });
    p.ids.delete(id);
    p.child.send({ cmd: 'terminate', id });
  }

  const wanted = plan.kills + plan.terminateHolding + plan.terminateWaiting;
  let nextLog = Date.now() + 10000;
  let starved = Date.now();
  while (wanted > 0 && Date.now() < limit) {
    const left = plan.kills - done.kills + plan.terminateHolding - done.terminateHolding;
    if (left <= 0 && done.terminateWaiting >= plan.terminateWaiting) break;
    if (live().length >= 3) starved = Date.now();
    else if (Date.now() - starved > 10000) {
      errors.push('fewer than 3 whole contender processes for 10 s: respawns keep failing');
      break;
    }
    if (Date.now() > nextLog) {
      nextLog += 10000;
      log(`${JSON.stringify(done)}; sections ${progress.file.n} file, ${progress.mutex.n} mutex`);
    }
    // Pace the chaos over about half the time allowed, so respawns keep up.
    await sleep(Math.max(5, (plan.seconds * 500) / wanted - 20));
    // Keep at least two whole processes contending, so progress can't stall on respawns.
    if (live().length < 3) continue;
    const r = Math.random() * (wanted - done.kills - done.terminateHolding - done.terminateWaiting);
    const needKill = plan.kills - done.kills;
    const needHold = plan.terminateHolding - done.terminateHolding;
    const id = r < needKill + needHold ? await holderId(200) : 0;
    if (r < needKill) {
      const p = procs.get(procOf(id));
      if (id === 0 || p === undefined || p.dying) continue;
      p.dying = true;
      deaths.push({ procIdx: p.procIdx, tReq: now(), tDone: null });
      p.child.kill('SIGKILL');
      done.kills++;
    } else if (r < needKill + needHold) {
      const p = procs.get(procOf(id));
      if (id === 0 || p === undefined || p.dying || !p.ids.has(id)) continue;
      terminate(p, id);
      done.terminateHolding++;
    } else {
      const ps = live();
      const p = ps[Math.floor(Math.random() * ps.length)];
      const ids = [...p.ids].filter(
        (x) => x !== Atomics.load(words, hold.DET_FILE) && x !== Atomics.load(words, hold.DET_MUTEX),
      );
      if (ids.length === 0) continue;
      terminate(p, ids[Math.floor(Math.random() * ids.length)]);
      done.terminateWaiting++;
    }
  }
  if (wanted === 0) await sleep(plan.controlSeconds * 1000);
  const seconds = (Date.now() - started) / 1000;

  // Stop: contenders finish their iteration and leave; stragglers are killed.
  running = false;
  clearInterval(watch);
  Atomics.store(words, hold.DET_STOP, 1);
  for (const p of procs.values()) if (p.child.connected) p.child.send({ cmd: 'stop' });
  const stopBy = Date.now() + 15000;
  while (procs.size > 0 && Date.now() < stopBy) await sleep(20);
  for (const p of procs.values()) {
    errors.push(`process ${p.procIdx} did not stop within 15 s`);
    p.child.kill('SIGKILL');
  }
  while (procs.size > 0) await sleep(20);

  // The driver takes each lock once more (through the same recorded section):
  // neither may be stuck, and the mutex must report a death left inside.
  const holder = hold.makeHolder(DRIVER_ID, dir, det.data, mutex.data);
  const file = new FileLock(f.lock);
  const stuck = [];
  for (const [kind, lock] of [
    ['file', file],
    ['mutex', mutex],
  ]) {
    if (nolock) continue;
    try {
      const h = await lock.acquire({ timeout: 5000 });
      holder.exit(kind, holder.enter(kind, h));
      h.release();
    } catch (err) {
      stuck.push(`${kind}: the driver could not acquire after the run: ${err.code ?? err}`);
    }
  }
  holder.close();
  file.close();

  const counterFile = fs.readFileSync(f.counter).readUInt32LE(0);
  const counterMutex = mutex.data.readUInt32LE(0);
  const results = {
    file: check('file', fs.readFileSync(f.journal.file, 'utf8'), counterFile, deaths, { control: nolock }),
    mutex: check('mutex', fs.readFileSync(f.journal.mutex, 'utf8'), counterMutex, deaths, { control: nolock }),
  };
  mutex.close();
  det.close();
  return { done, seconds, progress, errors: [...errors, ...stuck], results, counters: { counterFile, counterMutex } };
}

async function run({ quick, log }) {
  const plan = PLAN[quick ? 'quick' : 'full'];
  const notes = [];
  const figures = {};
  let ok = true;

  const selfFailures = selfTest();
  figures['checker self-test: synthetic faults missed'] = selfFailures.length;
  if (selfFailures.length > 0) {
    ok = false;
    notes.push(...selfFailures);
  }

  for (const kind of ['file', 'mutex']) {
    const label = kind === 'file' ? 'FileLock' : 'SharedMutex';
    log(`${label}: workers terminated inside contended acquire() for ${plan.stormSeconds} s`);
    const r = await storm(kind, plan.stormSeconds);
    figures[`${label}: workers terminated inside contended acquire(), process survived`] = r.ok
      ? r.terminations
      : `crashed (${r.signal ?? `exit ${r.code}`}) after ${r.terminations}`;
    if (!r.ok) {
      ok = false;
      notes.push(
        `${label}: a process whose workers are terminated during contended acquire() died by ${r.signal ?? `exit ${r.code}`}${r.fatal ? ` (${r.fatal})` : ''}; see test/stress/fixtures/teardown-storm.js`,
      );
    }
  }

  log(`control: ${PROCS}×${WORKERS} contenders without the locks for ${plan.controlSeconds} s`);
  const none = { kills: 0, terminateHolding: 0, terminateWaiting: 0, seconds: plan.controlSeconds };
  const control = await phase({ nolock: true, plan: { ...none, controlSeconds: plan.controlSeconds }, log });
  for (const kind of ['file', 'mutex']) {
    const n = control.results[kind].count;
    figures[`control ${kind}: violations found without the lock`] = n;
    if (n === 0) {
      ok = false;
      notes.push(`control (${kind}): the checks found no overlap without the lock, so they prove nothing`);
    } else notes.push(`control (${kind}), expected to fail: ${control.results[kind].violations[0]}`);
  }

  log(
    `chaos: ${plan.kills} SIGKILLs, ${plan.terminateHolding}+${plan.terminateWaiting} terminations, ≤ ${plan.seconds} s`,
  );
  const r = await phase({ nolock: false, plan, log });
  figures.seconds = round(r.seconds, 1);
  figures['SIGKILLs of a process whose worker held a lock'] = r.done.kills;
  figures['worker.terminate() of a holder'] = r.done.terminateHolding;
  figures['worker.terminate() of a waiter'] = r.done.terminateWaiting;
  for (const kind of ['file', 'mutex']) {
    const s = r.results[kind].stats;
    const label = kind === 'file' ? 'FileLock' : 'SharedMutex';
    figures[`${label}: critical sections completed`] = s.completed;
    figures[`${label}: holders that died inside the section`] = s.diedInside;
    figures[`${label}: final counter`] = kind === 'file' ? r.counters.counterFile : r.counters.counterMutex;
    figures[`${label}: longest time without progress (ms)`] = r.progress[kind].maxGap;
    if (kind === 'mutex') {
      figures['SharedMutex: ownerDied reports'] = s.ownerDied;
      figures['SharedMutex: ownerDied after a death inside the section'] = s.ownerDiedInside;
      figures['SharedMutex: ownerDied after a death between exit and unlock'] = s.ownerDiedAfterExit;
      figures['SharedMutex: ownerDied after a death holding an unrecorded grant'] = s.ownerDiedUnrecorded;
      figures['SharedMutex: tokens granted but never recorded'] = s.tokenGaps;
    }
    const v = r.results[kind].violations;
    figures[`${label}: violations`] = r.results[kind].count;
    if (r.results[kind].count > 0) {
      ok = false;
      notes.push(...v);
    }
    if (r.progress[kind].maxGap > MAX_GAP_MS) {
      ok = false;
      notes.push(`${label}: no progress for ${r.progress[kind].maxGap} ms (limit ${MAX_GAP_MS})`);
    }
  }
  if (
    r.done.kills < plan.kills ||
    r.done.terminateHolding + r.done.terminateWaiting < plan.terminateHolding + plan.terminateWaiting
  ) {
    ok = false;
    notes.push(`chaos fell short of its plan in ${plan.seconds} s: ${JSON.stringify(r.done)}`);
  }
  if (r.errors.length > 0) {
    ok = false;
    notes.push(`${r.errors.length} errors; the first ones:`, ...r.errors.slice(0, 6));
  }
  ok = (await semaphorePhases(plan, figures, notes, log)) && ok;
  return { ok, figures, notes };
}

/** Semaphore: a control without it, then its own chaos (fixtures/semaphore-chaos.js). */
async function semaphorePhases(plan, figures, notes, log) {
  let ok = true;
  const names = () => ({ name: regionName('sem'), witness: regionName('sem-witness') });
  log(`Semaphore control: ${PERMITS} permits not taken for ${plan.controlSeconds} s`);
  const control = await semaphoreChaos({ ...names(), seconds: plan.controlSeconds, events: 0, nolock: true });
  figures['control Semaphore: violations found without it'] = control.figures.violations;
  if (control.figures.violations === 0) {
    ok = false;
    notes.push('control (Semaphore): the witness saw no overlap without the semaphore, so it proves nothing');
  }
  const { events, seconds } = plan.semaphore;
  log(`Semaphore chaos: ${events} SIGKILLs and terminations, ≤ ${seconds} s`);
  const r = await semaphoreChaos({ ...names(), seconds, events, nolock: false, log });
  for (const [key, value] of Object.entries(r.figures)) figures[`Semaphore: ${key}`] = value;
  const fail = (note) => {
    ok = false;
    notes.push(`Semaphore: ${note}`);
  };
  if (r.figures.violations > 0) fail(`${r.figures.violations} times more than ${PERMITS} permits were in use`);
  if (r.info.available !== PERMITS || r.info.holders.length > 0) {
    fail(
      `after every child died, ${r.info.available} of ${PERMITS} permits free, holders ${JSON.stringify(r.info.holders)}`,
    );
  }
  if (r.figures['longest time without progress (ms)'] > MAX_GAP_MS) fail('progress stalled beyond the limit');
  if (r.done.killsHolding + r.done.terminationsHolding > 0 && r.figures['ownerDied reports'] === 0) {
    fail('holders died inside the section, but nobody saw ownerDied');
  }
  if (r.done.kills + r.done.terminations < events) fail(`fell short of its plan: ${JSON.stringify(r.done)}`);
  if (r.errors.length > 0) fail(`${r.errors.length} errors; the first: ${r.errors.slice(0, 3).join('; ')}`);
  return ok;
}

module.exports = { name: 'chaos', budget: { quick: 95, full: 360 }, run };
