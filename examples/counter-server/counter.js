// The counter as every thread sees it: a store (file, m.data or Redis) and
// the lock held around each read-modify-write of it. Each thread (the
// primary, every process's main thread, every worker thread) opens its own.
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const { FileLock, SharedMutex } = require('interlock');
const { DATA_SIZE } = require('./store-mutex');

const LABELS = { file: 'FileLock', mutex: 'SharedMutex', none: 'no lock' };

/** Where the primary keeps the run's state; everyone derives paths from it. */
function statePaths(config) {
  return {
    counterFile: path.join(config.dir, 'counter'),
    lockFile: path.join(config.dir, 'counter.lock'),
  };
}

function openLock(config) {
  if (config.lock === 'file') return new FileLock(statePaths(config).lockFile);
  if (config.lock === 'mutex') return new SharedMutex(config.mutexName, { dataSize: DATA_SIZE });
  return null;
}

// Each store loads only when used: the redis client takes ~150 ms to load,
// paid by every thread.
async function openStore(config, lock) {
  if (config.redisUrl !== null) return require('./store-redis').openRedisStore(config.redisUrl, config.redisKey);
  if (config.lock === 'mutex') return require('./store-mutex').openMutexStore(lock);
  return require('./store-file').openFileStore(statePaths(config).counterFile);
}

async function openCounter(config) {
  const lock = openLock(config);
  let store;
  try {
    store = await openStore(config, lock);
  } catch (err) {
    lock?.close();
    throw err;
  }
  const locked = async (fn) =>
    lock === null
      ? fn()
      : lock.run((handle) => {
          // The previous SharedMutex holder died mid-update (a killed process or
          // terminated thread); the counter keeps its last write, so carry on.
          if (handle.ownerDied) console.warn(`pid ${process.pid}: previous holder of ${config.mutexName} died`);
          return fn();
        });
  return {
    lockLabel: LABELS[config.lock],
    storeLabel: store.describe,
    store,
    /** One increment: read, pause, write back plus one, under the lock. */
    increment: (sleepMs) =>
      locked(async () => {
        const value = await store.read();
        await sleep(sleepMs);
        await store.write(value + 1);
      }),
    read: () => locked(() => store.read()),
    clear: () => locked(() => store.write(0)),
    async close() {
      try {
        await store.close();
      } finally {
        lock?.close();
      }
    },
  };
}

module.exports = { LABELS, openCounter, statePaths };
