'use strict';
// One role of bench/web-locks.js, printing one JSON line:
//   pairs <impl> <ms> <dir>      uncontended request/release; impl: interlock | builtin | filelock
//   contend <scope> <log> <workers> <ms>   this process's workers loop on one name
//   handoff <scope> <log> <samples>        two of these alternate on one name
const path = require('node:path');
const { isMainThread, Worker, workerData, parentPort } = require('node:worker_threads');

const argv = isMainThread ? process.argv.slice(2) : workerData.argv;
const [role] = argv;
const root = path.join(__dirname, '..');
const lib = () => require(root);
const out = (x) => (isMainThread ? process.stdout.write(`${JSON.stringify(x)}\n`) : parentPort.postMessage(x));

// Slots of the shared log (bench/web-locks.js writes END_AT).
const END_AT = 0; // Float64 slot 0: Date.now() at which contenders stop
const RELEASED = 1; // Float64 slot 1: hrtime ns of the last release (handoff)

function shared(log) {
  const m = new (lib().SharedMutex)(log, { dataSize: 4096 });
  return new Float64Array(m.data.buffer, m.data.byteOffset, 512);
}

async function pairs(impl, ms, dir) {
  let once;
  if (impl === 'builtin') once = () => navigator.locks.request('u', async () => {});
  if (impl === 'interlock') {
    const locks = new (lib().LockManager)({ scope: `bench-${process.pid}` });
    once = () => locks.request('u', async () => {});
  }
  if (impl === 'filelock') {
    const lock = new (lib().FileLock)(path.join(dir, `bench-${process.pid}.lock`));
    once = () => lock.run(async () => {});
  }
  for (let i = 0; i < 2000; i++) await once(); // warm up
  let n = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms) * 1000000n;
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 100; i++) await once();
    n += 100;
  }
  out({ nsPerOp: Number(process.hrtime.bigint() - t0) / n });
  if (impl === 'interlock') {
    require('node:fs').rmSync(`/dev/shm/interlock-weblocks-${process.geteuid()}-bench-${process.pid}`, { force: true });
  }
}

async function contendWorker(scope, log) {
  const locks = new (lib().LockManager)({ scope });
  const v = shared(log);
  await locks.request('gate', () => {});
  const endAt = v[END_AT];
  let count = 0;
  let guard = 0;
  while (Date.now() < endAt) {
    await locks.request('c', async () => {
      guard++; // the work: a read-modify-write the lock guards
      count++;
    });
  }
  out({ count, guard });
}

async function handoff(scope, log, samples) {
  const locks = new (lib().LockManager)({ scope });
  const v = shared(log);
  await locks.request('gate', () => {});
  const lat = [];
  while (lat.length < samples) {
    await locks.request('h', async () => {
      const now = Number(process.hrtime.bigint());
      if (v[RELEASED] !== 0) lat.push(now - v[RELEASED]);
      await new Promise((r) => setTimeout(r, 1)); // the other side queues meanwhile
      v[RELEASED] = Number(process.hrtime.bigint());
    });
  }
  v[RELEASED] = 0;
  out({ lat });
}

async function main() {
  if (role === 'pairs') return pairs(argv[1], Number(argv[2]), argv[3]);
  if (role === 'handoff') return handoff(argv[1], argv[2], Number(argv[3]));
  if (role === 'contend' && !isMainThread) return contendWorker(argv[1], argv[2]);
  if (role === 'contend') {
    const results = await Promise.all(
      Array.from({ length: Number(argv[3]) }, () => {
        const w = new Worker(__filename, { workerData: { argv } });
        return new Promise((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
        });
      }),
    );
    out({ counts: results.map((r) => r.count) });
    return;
  }
  throw new Error(`unknown role ${role}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
