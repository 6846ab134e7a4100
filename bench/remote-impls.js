'use strict';
// The remote locks the bench compares, each behind one shape:
//   open(url, name, { localDir }) → { pair(), hold(), queries?(), close() }
// pair() is one acquire + release; hold() resolves with a release function.
// Peers are configured as their READMEs suggest for a wait (they poll:
// redlock every retryDelay, redis-semaphore every retryInterval).
const { RedisLock } = require('interlock/redis');
const { PgLock } = require('interlock/postgres');

const TTL = 10_000;

// Requests a client sends (a script is one): both clients route every
// command through the instance's sendCommand. The subscriber connection a
// waiting RedisLock opens is not counted (one SUBSCRIBE per idle period).
function counted(client) {
  let requests = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...args) => {
    requests++;
    return send(...args);
  };
  return { client, queries: () => requests };
}

async function nodeRedis(url) {
  const client = require('redis').createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return counted(client);
}

function ioredis(url) {
  const Redis = require('ioredis');
  return counted(new Redis(url, { maxRetriesPerRequest: 1 }));
}

function fromHold(hold, close, queries) {
  return {
    hold,
    async pair() {
      await (await hold())();
    },
    queries,
    close,
  };
}

/** An interlock remote lock as a locker; `close` closes its client. */
function fromLock(lock, close, queries) {
  const hold = async () => {
    const h = await lock.acquire();
    return () => h.release();
  };
  const closeAll = async () => {
    lock.close();
    await close();
  };
  return fromHold(hold, closeAll, queries);
}

/** A pg Pool whose clients count the queries they send (one round trip each). */
function countingPool(url) {
  const pg = require('pg');
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  let queries = 0;
  pool.on('connect', (client) => {
    const query = client.query.bind(client);
    client.query = (...args) => {
      queries++;
      return query(...args);
    };
  });
  return { pool, queries: () => queries };
}

const lockers = {
  'interlock-redis': {
    label: 'RedisLock (node-redis)',
    async open(url, name, { local = false, localDir } = {}) {
      const { client, queries } = await nodeRedis(url);
      const lock = new RedisLock(client, name, { ttl: TTL, ...(local ? { local, localDir } : {}) });
      return fromLock(lock, () => client.close(), queries);
    },
  },
  'interlock-redis-local': {
    label: 'RedisLock (node-redis), local: true',
    open: (url, name, { localDir } = {}) => lockers['interlock-redis'].open(url, name, { local: true, localDir }),
  },
  'interlock-ioredis': {
    label: 'RedisLock (ioredis)',
    async open(url, name) {
      const { client, queries } = ioredis(url);
      return fromLock(new RedisLock(client, name, { ttl: TTL }), async () => client.disconnect(), queries);
    },
  },
  redlock: {
    label: '@sesamecare-oss/redlock 1.4 (ioredis)',
    async open(url, name) {
      const { Redlock } = require('@sesamecare-oss/redlock');
      const { client, queries } = ioredis(url);
      const redlock = new Redlock([client], { retryCount: -1, retryDelay: 10, retryJitter: 5 });
      const hold = async () => {
        const l = await redlock.acquire([name], TTL);
        return () => l.release();
      };
      return fromHold(hold, async () => client.disconnect(), queries);
    },
  },
  'redis-semaphore': {
    label: 'redis-semaphore 5.8 Mutex (ioredis)',
    async open(url, name) {
      const { Mutex } = require('redis-semaphore');
      const { client, queries } = ioredis(url);
      const hold = async () => {
        const m = new Mutex(client, name, { lockTimeout: TTL, acquireTimeout: 60_000 });
        await m.acquire();
        return () => m.release();
      };
      return fromHold(hold, async () => client.disconnect(), queries);
    },
  },
  'interlock-pg': {
    label: 'PgLock (pg Pool)',
    async open(url, name, { local = false, localDir } = {}) {
      const { pool, queries } = countingPool(url);
      const lock = new PgLock(pool, name, local ? { local, localDir } : {});
      return fromLock(lock, () => pool.end(), queries);
    },
  },
  'interlock-pg-local': {
    label: 'PgLock (pg Pool), local: true',
    open: (url, name, { localDir } = {}) => lockers['interlock-pg'].open(url, name, { local: true, localDir }),
  },
  'pg-advisory': {
    label: 'hand-written pg_advisory_lock/unlock (pg Pool)',
    async open(url, name) {
      const { pool, queries } = countingPool(url);
      const key = PgLock.key(name);
      const hold = async () => {
        const c = await pool.connect();
        await c.query(`SELECT pg_advisory_lock(${key})`);
        return async () => {
          await c.query(`SELECT pg_advisory_unlock(${key})`);
          c.release();
        };
      };
      return fromHold(hold, () => pool.end(), queries);
    },
  },
};

module.exports = { lockers };
