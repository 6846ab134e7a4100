'use strict';
// Real servers for the remote-lock tests: the ones .ci/run started
// (REDIS_URL, POSTGRES_URL), or private ones started here. Absent servers
// skip with the reason — except in CI (CI=true), where they fail.
const net = require('node:net');
const path = require('node:path');
const os = require('node:os');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const assert = require('node:assert/strict');
const { sleep, startFixture, startTracked } = require('./helpers');

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function which(bin) {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Whether this machine has the server binaries scripts/<kind>.sh starts ('redis' or 'postgres'). */
function serverInstalled(kind) {
  if (kind === 'redis') return which('redis-server') !== null;
  return spawnSync('sh', ['-c', 'ls /usr/lib/postgresql/*/bin/initdb'], { stdio: 'ignore' }).status === 0;
}

/**
 * A private redis-server (restartable on its port; `extra` configuration
 * arguments), or null if none is installed.
 */
async function startRedis(port, extra = []) {
  const bin = which('redis-server');
  if (bin === null) return null;
  const p = port ?? (await freePort());
  const args = ['--port', `${p}`, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra];
  const server = startTracked(bin, args, 'Ready to accept connections');
  await server.started;
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    child: server.child,
    async stop(signal = 'SIGKILL') {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
      await server.exited;
    },
  };
}

/** A private PostgreSQL through scripts/postgres.sh, or null if none is installed. */
function startPostgres() {
  const script = path.join(__dirname, '..', '..', 'scripts', 'postgres.sh');
  const state = path.join(os.tmpdir(), `interlock-postgres-test-${process.pid}.state`);
  const env = { ...process.env, INTERLOCK_POSTGRES_STATE: state };
  if (!serverInstalled('postgres')) return null;
  const r = spawnSync('bash', [script, 'start'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/postgres.sh start failed:\n${r.stderr}`);
  const url = /POSTGRES_URL=(\S+)/.exec(r.stdout)?.[1];
  return {
    url,
    stop: () => spawnSync('bash', [script, 'stop'], { env, stdio: 'ignore' }),
  };
}

/**
 * The server for a suite: { url, stop? } or, when absent outside CI, a
 * string saying why (the caller prints it and skips).
 */
async function serverFor(kind) {
  const given = kind === 'redis' ? process.env.REDIS_URL : process.env.POSTGRES_URL;
  if (given) return { url: given };
  const started = kind === 'redis' ? await startRedis() : startPostgres();
  if (started !== null) return started;
  const why =
    kind === 'redis'
      ? 'redis-server not installed; .ci/run installs it (or set REDIS_URL)'
      : 'PostgreSQL not installed; .ci/run installs it (or set POSTGRES_URL)';
  if (process.env.CI === 'true') throw new Error(`CI=true but ${why}`);
  return why;
}

/** In a test: print why and skip when the suite has no server. */
function needServer(ctx, server) {
  if (typeof server === 'string' || server === null) {
    console.log(`      skipped: ${server ?? 'the suite setup failed'}`);
    ctx.skip(); // no server of this kind here; the reason is printed above
  }
}

/**
 * 4 processes × n read-pause-write increments of `file` under a remote lock
 * of `kind` (or 'none'); with `localDirs`, processes 0/2 and 1/3 are two
 * "hosts" with a machine-local lock dir each, and with `workers` each
 * process counts in that many worker threads. Returns the final count.
 */
async function countAcross(kind, url, name, file, n, localDirs, workers) {
  fs.writeFileSync(file, '00000000');
  const kids = [0, 1, 2, 3].map((i) => {
    const args = ['count', kind, url, name, file, `${n}`];
    if (localDirs) args.push(localDirs[i % 2]);
    if (workers) args.push(`${workers}`);
    return startFixture('remote-holder.js', args, 'ready');
  });
  await Promise.all(kids.map((k) => k.started));
  for (const k of kids) k.child.stdin.write('go\n');
  for (const k of kids) {
    const { code, err } = await k.closed;
    assert.equal(code, 0, err);
  }
  return Number(fs.readFileSync(file, 'utf8'));
}

/**
 * The exclusion check of a remote kind: exact with the lock, plain and as two
 * "hosts"; and the no-lock control loses updates (the race is real).
 */
async function assertExclusion(kind, url, dir) {
  const n = 25;
  const stamp = `${process.pid}-${Date.now()}`;
  const go = (what, localDirs) =>
    countAcross(
      what,
      url,
      `test-${stamp}-${localDirs ? 'hosts' : 'plain'}`,
      `${dir}/${what}-${!!localDirs}`,
      n,
      localDirs,
    );
  assert.equal(await go(kind), 4 * n);
  assert.equal(await go(kind, [`${dir}/host-a`, `${dir}/host-b`]), 4 * n);
  const control = await go('none');
  assert.ok(control < 4 * n, `no lock yet ${control} of ${4 * n}: the race did not happen`);
}

/**
 * The basic cycle of a remote lock: a grant with a bigint token, a second
 * acquire that waits while it is held and gets it within 500 ms of the
 * release (woken, not by a lease running out) with a larger token, and
 * nothing held after. `held()` looks from another client.
 */
async function assertHandoff(lock, held) {
  const first = await lock.acquire();
  assert.equal(typeof first.token, 'bigint');
  assert.equal(await held(), true);
  let grantedAt = 0;
  const waiter = lock.acquire().then((h) => {
    grantedAt = performance.now();
    return h;
  });
  await sleep(100);
  assert.equal(grantedAt, 0, 'the waiter got the lock while it was held');
  const releasedAt = performance.now();
  await first.release();
  const second = await waiter;
  assert.ok(second.token > first.token, `${second.token} after ${first.token}`);
  assert.ok(grantedAt - releasedAt < 500, `granted ${grantedAt - releasedAt} ms after release`);
  await second[Symbol.asyncDispose]();
  assert.equal(second.released, true);
  assert.equal(await held(), false);
  await first.release(); // idempotent
}

/**
 * The `.lease` files in a RedisLock `localDir` that hold a record for the
 * next local holder. The file stays once used; a claimed record leaves its
 * first line empty.
 */
function leaseRecords(dir) {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.lease') && fs.readFileSync(path.join(dir, f), 'utf8').split('\n')[0] !== '');
}

/**
 * Counts the requests `client` sends from now on (a script is one; the wake
 * channel's SUBSCRIBE goes over a connection of its own), as bench/remote.js
 * counts them (node-redis and ioredis both send every command through
 * sendCommand); returns the count so far.
 */
function counting(client) {
  let sent = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...args) => {
    sent++;
    return send(...args);
  };
  return () => sent;
}

module.exports = {
  leaseRecords,
  counting,
  serverInstalled,
  freePort,
  startRedis,
  startPostgres,
  serverFor,
  needServer,
  countAcross,
  assertExclusion,
  assertHandoff,
};
