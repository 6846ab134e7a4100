'use strict';
// `node bench/semaphore.js [--full]`: Semaphore beside the peers a user would
// pick: async-mutex's Semaphore (one thread only) and redis-semaphore (needs
// REDIS_URL: `eval "$(bash scripts/redis.sh start)"`). Uncontended: one task
// takes and gives back 1 permit in a loop. Contended: PROCS processes x TASKS
// async tasks share PERMITS permits (async-mutex: all tasks in one thread, the
// only place it works). Prints a markdown section; BENCHMARKS.md holds the last one.
const { fork } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const full = process.argv.includes('--full');
const MS = full ? 2000 : 500;
const REPS = full ? 5 : 3;
const PROCS = 4;
const TASKS = 4;
const PERMITS = 2;

function redisClient() {
  if (process.env.REDIS_URL === undefined) return null;
  const Redis = require('ioredis');
  return new Redis(process.env.REDIS_URL, { lazyConnect: false });
}

/** [label, open(name) -> { acquire(): Promise<release>, close() }] */
const impls = {
  interlock: {
    label: 'interlock Semaphore',
    open(name) {
      const s = new (require(path.join(__dirname, '..')).Semaphore)(name, { permits: PERMITS });
      return {
        acquire: async () => {
          const h = await s.acquire();
          return () => h.release();
        },
        acquireSync: () => {
          const h = s.acquireSync();
          return () => h.release();
        },
        close: () => s.close(),
      };
    },
  },
  'async-mutex': {
    label: 'async-mutex Semaphore (in-process only)',
    inProcess: true,
    open() {
      const s = new (require('async-mutex').Semaphore)(PERMITS);
      return { acquire: async () => (await s.acquire())[1], close: () => {} };
    },
  },
  'redis-semaphore': {
    label: 'redis-semaphore Semaphore (local redis-server)',
    needs: 'REDIS_URL',
    open(name) {
      const { Semaphore } = require('redis-semaphore');
      const client = redisClient();
      const opts = { acquireTimeout: 60000, retryInterval: 1, lockTimeout: 10000 };
      return {
        acquire: async () => {
          const s = new Semaphore(client, name, PERMITS, opts);
          await s.acquire();
          return () => s.release();
        },
        close: () => client.quit(),
      };
    },
  },
};

/** ops completed by `tasks` loopers in `ms`. */
async function loop(impl, name, tasks, ms, form = 'async') {
  const lock = impl.open(name);
  let ops = 0;
  const end = Date.now() + ms;
  const one = async () => {
    while (Date.now() < end) {
      const release = form === 'sync' ? lock.acquireSync() : await lock.acquire();
      await release();
      ops++;
      if (form === 'sync' && ops % 256 === 0) await new Promise(setImmediate);
    }
  };
  await Promise.all(Array.from({ length: tasks }, one));
  await lock.close();
  return ops;
}

async function child() {
  const [key, name, tasks, ms] = process.argv.slice(3);
  process.send({ ready: true });
  await new Promise((resolve) => process.once('message', resolve));
  process.send({ ops: await loop(impls[key], name, Number(tasks), Number(ms)) });
}

async function contended(key, name) {
  const children = Array.from({ length: PROCS }, () =>
    fork(__filename, ['child', key, name, String(TASKS), String(MS)], { stdio: 'inherit' }),
  );
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))));
  const t0 = process.hrtime.bigint();
  for (const c of children) c.send('go');
  const ops = await Promise.all(
    children.map((c) => new Promise((resolve) => c.once('message', (m) => resolve(m.ops)))),
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return ops.reduce((a, b) => a + b, 0) / s;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));

async function main() {
  const rows = [];
  for (const [key, impl] of Object.entries(impls)) {
    if (impl.needs !== undefined && process.env[impl.needs] === undefined) {
      rows.push([impl.label, `skipped: ${impl.needs} not set`, '', '', '']);
      continue;
    }
    const name = `interlock-bench-sem-${process.pid}-${key}`;
    try {
      await impl.open(name).close(); // a peer that is not installed is skipped
    } catch (err) {
      rows.push([impl.label, `skipped: ${err.code ?? err.message}`, '', '', '']);
      continue;
    }
    const ns = async (form) => {
      const r = [];
      for (let i = 0; i < REPS; i++) r.push((MS * 1e6) / (await loop(impl, name, 1, MS, form)));
      return median(r);
    };
    const asyncNs = await ns('async');
    const syncNs = impl.open(name).acquireSync === undefined ? null : await ns('sync');
    const c = [];
    if (impl.inProcess) {
      for (let i = 0; i < REPS; i++) c.push((await loop(impl, name, PROCS * TASKS, MS)) / (MS / 1000));
    } else {
      for (let i = 0; i < REPS; i++) c.push(await contended(key, name));
    }
    rows.push([
      impl.label,
      fmt(asyncNs),
      syncNs === null ? '–' : fmt(syncNs),
      fmt(median(c)),
      impl.inProcess ? `${PROCS * TASKS} tasks, 1 thread` : `${PROCS} processes × ${TASKS} tasks`,
    ]);
    if (key === 'interlock') require(path.join(__dirname, '..')).Semaphore.unlink(name);
  }
  const lines = [
    `### Semaphore (${PERMITS} permits)`,
    '',
    `\`node bench/semaphore.js${full ? ' --full' : ''}\` (with \`REDIS_URL\` from \`scripts/redis.sh start\`), ` +
      `median of ${REPS} runs of ${MS} ms; ${os.availableParallelism()} CPUs, load ${os.loadavg()[0].toFixed(1)}, ` +
      `Node ${process.version}.`,
    '',
    '| lock | uncontended async (ns/op) | uncontended sync (ns/op) | contended (ops/s) | contenders |',
    '| --- | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
  console.log(lines.join('\n'));
}

if (process.argv[2] === 'child') child();
else main();
