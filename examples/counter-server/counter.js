// The counter as every thread sees it: a store (file, m.data or Redis) and
// the lock held around each read-modify-write of it. Each thread (the
// primary, every process's main thread, every worker thread) opens its own.
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const { FileLock, SharedMutex } = require('interlock');
const { DATA_SIZE } = require('./store-mutex');

const LABELS = { file: 'FileLock', mutex: 'SharedMutex', redis: 'RedisLock', postgres: 'PgLock', none: 'no lock' };

/** Where the primary keeps the run's state; everyone derives paths from it. */
function statePaths(config) {
  return {
    // Under --hosts the counter file is the one thing the trees share.
    counterFile: path.join(config.sharedDir ?? config.dir, 'counter'),
    lockFile: path.join(config.dir, 'counter.lock'),
  };
}

// The remote kinds get a client of their own per thread, closed with the lock.
async function openLock(config) {
  if (config.lock === 'file') return { lock: new FileLock(statePaths(config).lockFile), close() {} };
  if (config.lock === 'mutex') return { lock: new SharedMutex(config.mutexName, { dataSize: DATA_SIZE }), close() {} };
  if (config.lock === 'redis') {
    const { RedisLock } = require('interlock/redis');
    const client = require('redis').createClient({ url: config.redisUrl });
    client.on('error', () => {}); // it reconnects; a lock or store command reports the failure
    await client.connect();
    return { lock: new RedisLock(client, config.lockName), close: () => client.destroy() };
  }
  if (config.lock === 'postgres') {
    const { PgLock } = require('interlock/postgres');
    const pool = new (require('pg').Pool)({ connectionString: config.postgresUrl, max: 2 });
    pool.on('error', () => {});
    return { lock: new PgLock(pool, config.lockName), close: () => pool.end() };
  }
  return { lock: null, close() {} };
}

// Each store loads only when used: the redis client takes ~150 ms to load,
// paid by every thread. A store shared by --hosts trees cannot be m.data.
async function openStore(config, lock) {
  if (config.redisUrl !== null) return require('./store-redis').openRedisStore(config.redisUrl, config.redisKey);
  if (config.postgresUrl !== null) {
    return require('./store-postgres').openPostgresStore(config.postgresUrl, config.lockName);
  }
  if (config.lock === 'mutex' && config.sharedDir === null) return require('./store-mutex').openMutexStore(lock);
  return require('./store-file').openFileStore(statePaths(config).counterFile);
}

async function openCounter(config) {
  const { lock, close: closeClient } = await openLock(config);
  const remote = config.lock === 'redis' || config.lock === 'postgres';
  let store;
  try {
    store = await openStore(config, lock);
  } catch (err) {
    lock?.close();
    await closeClient();
    throw err;
  }
  const locked = async (fn) =>
    lock === null
      ? fn()
      : lock.run((handle) => {
          // The previous SharedMutex holder died mid-update (a killed process or
          // terminated thread); the counter keeps its last write, so carry on.
          if (handle.ownerDied) console.warn(`pid ${process.pid}: previous holder of ${config.mutexName} died`);
          // A distributed lock's fencing token: the store refuses a write
          // older than the last. (Local tokens come from one region per
          // machine, so across --hosts they do not order anything.)
          return fn(remote ? handle.token : undefined);
        });
  return {
    lockLabel: LABELS[config.lock],
    storeLabel: store.describe,
    store,
    /** One increment: read, pause, write back plus one, under the lock. */
    increment: (sleepMs) =>
      locked(async (token) => {
        const value = await store.read();
        await sleep(sleepMs);
        await store.write(value + 1, token);
      }),
    read: () => locked(() => store.read()),
    clear: () => locked((token) => store.write(0, token)),
    async close() {
      try {
        await store.close();
      } finally {
        lock?.close();
        await closeClient();
      }
    },
  };
}

module.exports = { LABELS, openCounter, statePaths };
