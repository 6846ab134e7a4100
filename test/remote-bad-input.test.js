'use strict';
// Bad input to the remote kinds: each row is thrown synchronously as a
// TypeError/RangeError with Node's codes and the argument's name, or (for a
// client that cannot talk) rejected as a LockError; and nothing is left
// held or open after.
const assert = require('node:assert/strict');
const { createClient } = require('redis');
const Redis = require('ioredis');
const pg = require('pg');
const { RedisLock } = require('interlock/redis');
const { PgLock } = require('interlock/postgres');
const { LockError } = require('..');
const { needServer, serverFor } = require('./support/servers');

const T = 'ERR_INVALID_ARG_TYPE';
const V = 'ERR_INVALID_ARG_VALUE';
const R = 'ERR_OUT_OF_RANGE';

describe('remote locks: bad input', function () {
  this.timeout(20000);
  let redis = null;
  let postgres = null;
  const open = []; // clients to close after

  before(async function () {
    this.timeout(20000);
    redis = await serverFor('redis');
    postgres = await serverFor('postgres');
  });

  after(async () => {
    for (const close of open.reverse()) await close();
    await redis?.stop?.();
    postgres?.stop?.();
  });

  async function nodeRedis() {
    const c = createClient({ url: redis.url });
    c.on('error', () => {});
    await c.connect();
    open.push(() => c.close());
    return c;
  }

  function pool() {
    const p = new pg.Pool({ connectionString: postgres.url, max: 2 });
    open.push(() => p.end());
    return p;
  }

  // [title, make (returns what throws), error class, code, words in the message]
  const redisRows = (c) => [
    ['client undefined', () => new RedisLock(undefined, 'n'), TypeError, T, /"client"/],
    ['client a URL string', () => new RedisLock('redis://127.0.0.1', 'n'), TypeError, T, /"client".*string/],
    ['client a plain object', () => new RedisLock({}, 'n'), TypeError, T, /node-redis.*ioredis/],
    ['client a pg Pool', () => new RedisLock(new pg.Pool(), 'n'), TypeError, T, /Pool/],
    ['name a number', () => new RedisLock(c, 42), TypeError, T, /"name"/],
    ['name empty', () => new RedisLock(c, ''), TypeError, V, /'name'/],
    ['name with a NUL byte', () => new RedisLock(c, 'a\u0000b'), TypeError, V, /null bytes/],
    ['name of 1001 characters', () => new RedisLock(c, 'x'.repeat(1001)), TypeError, V, /1 to 1000/],
    ['options a string', () => new RedisLock(c, 'n', 'fast'), TypeError, T, /"options"/],
    ['ttl 0', () => new RedisLock(c, 'n', { ttl: 0 }), RangeError, R, /options\.ttl/],
    ['ttl NaN', () => new RedisLock(c, 'n', { ttl: Number.NaN }), RangeError, R, /NaN/],
    ['ttl 2^31 ms', () => new RedisLock(c, 'n', { ttl: 2 ** 31 }), RangeError, R, /2147483648/],
    ['ttl 1.5', () => new RedisLock(c, 'n', { ttl: 1.5 }), RangeError, R, /integer/],
    ['ttl a string', () => new RedisLock(c, 'n', { ttl: '100' }), TypeError, T, /options\.ttl/],
    ['prefix a number', () => new RedisLock(c, 'n', { prefix: 1 }), TypeError, T, /options\.prefix/],
    ['local "yes"', () => new RedisLock(c, 'n', { local: 'yes' }), TypeError, T, /options\.local/],
    ['localDir without local', () => new RedisLock(c, 'n', { localDir: '/tmp' }), TypeError, V, /local: true/],
    ['acquire timeout -1', () => new RedisLock(c, 'n').acquire({ timeout: -1 }), RangeError, R, /options\.timeout/],
    ['acquire signal not a signal', () => new RedisLock(c, 'n').acquire({ signal: {} }), TypeError, T, /AbortSignal/],
    ['run without a function', () => new RedisLock(c, 'n').run('go'), TypeError, T, /"fn"/],
  ];

  it('RedisLock: 20 rows of bad arguments throw synchronously, typed and named', async function () {
    needServer(this, redis); // skipped without a redis-server (CI always starts one): the reason is printed
    const c = await nodeRedis();
    for (const [title, make, cls, code, words] of redisRows(c)) {
      assert.throws(make, (err) => err instanceof cls && err.code === code && words.test(err.message), title);
    }
  });

  it('RedisLock: a client in subscriber mode is refused (node-redis and ioredis)', async function () {
    needServer(this, redis); // skipped without a redis-server (CI always starts one): the reason is printed
    const sub = await nodeRedis();
    await sub.subscribe('interlock-bad-input', () => {});
    assert.throws(() => new RedisLock(sub, 'n'), { name: 'TypeError', code: V, message: /subscriber mode/ });
    const io = new Redis(redis.url);
    open.push(() => io.disconnect());
    await io.subscribe('interlock-bad-input');
    assert.throws(() => new RedisLock(io, 'n'), { name: 'TypeError', code: V, message: /subscriber mode/ });
  });

  it('RedisLock: a closed client rejects acquire with ERR_LOCK_SERVER, naming the lock', async function () {
    needServer(this, redis); // skipped without a redis-server (CI always starts one): the reason is printed
    const c = createClient({ url: redis.url });
    const err = await new RedisLock(c, 'never-connected').acquire().catch((e) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.equal(err.code, 'ERR_LOCK_SERVER');
    assert.match(err.message, /never-connected/);
  });

  it('PgLock: bad arguments throw synchronously, typed and named', async function () {
    needServer(this, postgres); // skipped without a PostgreSQL (CI always starts one): the reason is printed
    const p = pool();
    const rows = [
      ['pool null', () => new PgLock(null, 'n'), TypeError, T, /"client"/],
      ['a redis client', () => new PgLock(createClient(), 'n'), TypeError, T, /pg Pool or Client/],
      ['name undefined', () => new PgLock(p, undefined), TypeError, T, /"name"/],
      ['name empty', () => new PgLock(p, ''), TypeError, V, /'name'/],
      ['shared "yes"', () => new PgLock(p, 'n', { shared: 'yes' }), TypeError, T, /options\.shared/],
      ['acquire timeout NaN', () => new PgLock(p, 'n').acquire({ timeout: Number.NaN }), RangeError, R, /timeout/],
      ['withTransaction without a function', () => PgLock.withTransaction(p, 'n', 5), TypeError, T, /"fn"/],
      ['withTransaction on a string', () => PgLock.withTransaction('pg://x', 'n', () => {}), TypeError, T, /"client"/],
    ];
    for (const [title, make, cls, code, words] of rows) {
      assert.throws(make, (err) => err instanceof cls && err.code === code && words.test(err.message), title);
    }
  });

  it('PgLock: a server that refuses rejects acquire with ERR_LOCK_SERVER; the pool is left usable', async function () {
    needServer(this, postgres); // skipped without a PostgreSQL (CI always starts one): the reason is printed
    const bad = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/postgres', max: 1 });
    open.push(() => bad.end());
    const err = await new PgLock(bad, 'refused').acquire().catch((e) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.equal(err.code, 'ERR_LOCK_SERVER');
    assert.match(err.message, /refused/);
    assert.equal(bad.totalCount, 0);
  });
});
