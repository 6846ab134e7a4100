#!/usr/bin/env node

// The problem interlock solves, in one run: several processes, each with
// several worker threads, add 1 to a counter file by read → sleep 1 ms →
// write. The same experiment runs twice, with a lock and with none, and the
// totals are compared with what they should be.
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { parseArgs } = require('node:util');
const { LOCKS, counterPath, readCounter, writeCounter } = require('./demo-common');

const USAGE = `Usage: npm run demo -- [options]

  --processes N     child processes (default 4)
  --threads M       worker threads per process (default 4)
  --increments K    increments per thread (default 150)
  --api async|sync  await lock.acquire() or lock.acquireSync() (default async)
  --lock file|mutex FileLock or SharedMutex for the locked run (default file)
  -h, --help`;

function options() {
  const { values } = parseArgs({
    options: {
      processes: { type: 'string', default: '4' },
      threads: { type: 'string', default: '4' },
      increments: { type: 'string', default: '150' },
      api: { type: 'string', default: 'async' },
      lock: { type: 'string', default: 'file' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const count = (name, max) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}`);
    return n;
  };
  const processes = count('processes', 64);
  const threads = count('threads', 64);
  const increments = count('increments', 1_000_000);
  if (!['async', 'sync'].includes(values.api)) throw new Error('--api must be async or sync');
  if (!Object.hasOwn(LOCKS, values.lock)) throw new Error(`--lock must be one of: ${Object.keys(LOCKS).join(', ')}`);
  return { processes, threads, increments, api: values.api, lock: values.lock };
}

// Messages from a child in order; rejects if it exits before sending one.
function inbox(child) {
  const queued = [];
  const waiting = [];
  let gone = null;
  child.on('message', (msg) => (waiting.length > 0 ? waiting.shift().resolve(msg) : queued.push(msg)));
  child.on('exit', (code, signal) => {
    gone = new Error(`process ${child.pid} exited (${signal ?? code}) before it finished`);
    for (const w of waiting.splice(0)) w.reject(gone);
  });
  return async (type) => {
    const msg =
      queued.length > 0
        ? queued.shift()
        : await new Promise((resolve, reject) => (gone ? reject(gone) : waiting.push({ resolve, reject })));
    if (msg.type === 'error') throw new Error(`in process ${child.pid}:\n${msg.message}`);
    if (msg.type !== type) throw new Error(`process ${child.pid} sent ${msg.type}, expected ${type}`);
    return msg;
  };
}

const made = new Map(); // temp directory -> the lock kind used in it

function removeDir(dir) {
  const lock = made.get(dir);
  made.delete(dir);
  if (lock !== 'none') LOCKS[lock].remove(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** One experiment; `lock` is a key of LOCKS or 'none'. */
async function experiment(opts, lock) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-demo-'));
  made.set(dir, lock);
  const fd = fs.openSync(counterPath(dir), 'w+');
  writeCounter(fd, 0);
  const config = JSON.stringify({ dir, lock, api: opts.api, threads: opts.threads, increments: opts.increments });
  const children = [];
  try {
    for (let i = 0; i < opts.processes; i++) {
      const child = fork(path.join(__dirname, 'demo-process.js'), [config], { stdio: 'inherit' });
      children.push({ child, next: inbox(child) });
    }
    // Everyone starts together, after the slow part (loading Node in each
    // process and thread), so the runs really overlap.
    await Promise.all(children.map((c) => c.next('ready')));
    const start = performance.now();
    for (const c of children) c.child.send('go');
    const reports = await Promise.all(children.map((c) => c.next('done')));
    const ms = performance.now() - start;
    const made = reports.reduce((sum, r) => sum + r.increments, 0);
    return { total: readCounter(fd), made, ms };
  } finally {
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.closeSync(fd);
    removeDir(dir);
  }
}

function line(label, result, expected) {
  const lost = expected - result.total;
  const verdict = lost === 0 ? 'exact' : `${lost} updates lost (${((100 * lost) / expected).toFixed(0)}%)`;
  const total = `${result.total} / ${expected}`;
  return `  ${label.padEnd(11)} ${total.padStart(13)}   ${verdict.padEnd(28)} ${(result.ms / 1000).toFixed(2)} s`;
}

async function main() {
  let opts;
  try {
    opts = options();
  } catch (err) {
    console.error(`${err.message}\n\n${USAGE}`);
    return 2;
  }
  const { processes, threads, increments, api, lock } = opts;
  const expected = processes * threads * increments;
  const acquire = api === 'sync' ? 'acquireSync()' : 'await acquire()';
  console.log(
    `${processes} processes × ${threads} worker threads × ${increments} increments = ${expected} expected\n` +
      `each increment: read the counter file, sleep 1 ms, write it back plus one\n`,
  );
  const locked = await experiment(opts, lock);
  const unlocked = await experiment(opts, 'none');
  for (const r of [locked, unlocked]) {
    if (r.made !== expected) throw new Error(`threads reported ${r.made} increments, expected ${expected}`);
  }
  console.log(line(LOCKS[lock].label, locked, expected));
  console.log(line('no lock', unlocked, expected));
  if (locked.total !== expected) {
    console.log(`\nFAIL: with ${LOCKS[lock].label} the total should be exactly ${expected}.`);
    return 1;
  }
  console.log(
    `\n${LOCKS[lock].label} (${acquire}) lets one read-sleep-write run at a time across all ${processes * threads} threads,` +
      `\nso every increment lands and the run takes at least ${expected} × 1 ms.` +
      `\nWithout it, threads read the same value and overwrite each other's writes.`,
  );
  if (unlocked.total === expected) console.log('(This time the unlocked run lost nothing; try more --threads.)');
  return 0;
}

// Children exit when we do (they watch the IPC channel); leave no temp
// directory behind either.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
]) {
  process.once(signal, () => {
    for (const dir of [...made.keys()]) removeDir(dir);
    process.exit(code);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
