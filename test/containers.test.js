'use strict';
// Shared regions where Node runs in containers (issue 10, items 1-7): the
// region header's kind tag and PID namespace, 64-bit tokens, errno names.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Semaphore, SharedMutex } = require('..');
const { killChildren } = require('./helpers');
const { uniqueName, cleanupNames, holderProcess } = require('./fixtures/mutex-driver');

const ROOT = path.join(__dirname, '..');
const shm = (name) => `/dev/shm/${name}`;
// Offsets in a mutex region file (native/core/region_file.h, shared_region.h):
// the common header's kind tag, then the kind's state at 128.
const KIND = 12;
const DIRTY = 128;
const TOKEN = 136;

function patch(name, offset, buf) {
  const fd = fs.openSync(shm(name), 'r+');
  fs.writeSync(fd, buf, 0, buf.length, offset);
  fs.closeSync(fd);
}

function u64(value) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(value);
  return b;
}

/** Runs `code` in a fresh node (under `wrap`, e.g. unshare) and returns what it printed as JSON. */
function runNode(code, wrap = []) {
  const args = [...wrap, process.execPath, '-e', code];
  const r = spawnSync(args[0], args.slice(1), { cwd: ROOT, encoding: 'utf8', timeout: 20000 });
  return { status: r.status, stderr: r.stderr, out: r.stdout.trim() === '' ? null : JSON.parse(r.stdout) };
}

/** Node code that opens region `name` and prints what happened. */
const tryOpen = (name) => `
  const { SharedMutex } = require(${JSON.stringify(ROOT)});
  try {
    const m = new SharedMutex(${JSON.stringify(name)});
    const h = m.tryAcquire();
    console.log(JSON.stringify({ ok: true, held: h !== null }));
    h?.release();
  } catch (err) {
    console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }));
  }`;

describe('shared regions in containers', () => {
  afterEach(killChildren);
  after(cleanupNames);

  describe('the header names its kind', () => {
    it('a region of another kind under the name is ERR_INCOMPATIBLE_REGION, saying so; never opened as a mutex', () => {
      const name = uniqueName('kind');
      new SharedMutex(name).close();
      const b = Buffer.alloc(4);
      b.writeUInt32LE(2); // RegionKind::kSemaphore
      patch(name, KIND, b);
      assert.throws(() => new SharedMutex(name), {
        name: 'LockError',
        code: 'ERR_INCOMPATIBLE_REGION',
        path: shm(name),
        message: /another kind of region, not a SharedMutex/,
      });
      assert.throws(() => SharedMutex.inspect(name), { code: 'ERR_INCOMPATIBLE_REGION' });
      b.writeUInt32LE(1); // back to a mutex region: the control
      patch(name, KIND, b);
      const m = new SharedMutex(name);
      m.tryAcquire().release();
      m.close();
    });

    it('a Semaphore region is never opened as a SharedMutex, nor the other way round', () => {
      const sem = uniqueName('kind-sem');
      const s = new Semaphore(sem, { permits: 2 });
      for (const dataSize of [0, 64, 4096]) {
        assert.throws(() => new SharedMutex(sem, { dataSize }), {
          code: 'ERR_INCOMPATIBLE_REGION',
          message: /another kind of region, not a SharedMutex/,
        });
      }
      s.close();
      const mutex = uniqueName('kind-mutex');
      new SharedMutex(mutex).close();
      assert.throws(() => new Semaphore(mutex, { permits: 2 }), {
        code: 'ERR_INCOMPATIBLE_REGION',
        message: /another kind of region, not a Semaphore/,
      });
    });
  });

  describe('PID namespaces (robust mutexes name owners by TID)', () => {
    it('a region made in another PID namespace is refused there, naming the cause and FileLock', function () {
      this.timeout(30000);
      const probe = spawnSync('unshare', ['-p', '-f', '--mount-proc', 'true']);
      if (probe.status !== 0) {
        console.log(`      skipped: unshare -p -f --mount-proc fails here: ${String(probe.stderr).trim()}`);
        this.skip(); // needs CAP_SYS_ADMIN; the reason is printed above
      }
      const name = uniqueName('pidns');
      const m = new SharedMutex(name);
      // Control: another process in our namespace uses it.
      const here = runNode(tryOpen(name));
      assert.deepEqual(here.out, { ok: true, held: true }, here.stderr);
      const there = runNode(tryOpen(name), ['unshare', '-p', '-f', '--mount-proc']);
      assert.equal(there.out?.ok, false, `opened from another PID namespace: ${JSON.stringify(there)}`);
      assert.equal(there.out.code, 'ERR_INCOMPATIBLE_REGION', there.out.message);
      assert.match(there.out.message, /another PID namespace/);
      assert.match(there.out.message, /FileLock/);
      // And the other way round: a region made over there is refused here.
      const theirs = uniqueName('pidns-theirs');
      const made = runNode(tryOpen(theirs), ['unshare', '-p', '-f', '--mount-proc']);
      assert.deepEqual(made.out, { ok: true, held: true }, made.stderr);
      assert.throws(() => new SharedMutex(theirs), { code: 'ERR_INCOMPATIBLE_REGION', message: /PID namespace/ });
      assert.equal(SharedMutex.inspect(theirs).samePidNamespace, false);
      assert.equal(SharedMutex.inspect(name).samePidNamespace, true);
      m.close();
    });
  });

  describe('fencing tokens are 64-bit, ownerDied apart', () => {
    it('past 2^52 (set in the header): exact, strictly increasing, ownerDied not mixed in; sync, try, async', async () => {
      const name = uniqueName('token');
      const m = new SharedMutex(name);
      const start = 2n ** 60n + 12345n;
      patch(name, TOKEN, u64(start));
      assert.equal(m.info().token, start, 'the test writes where the token lives');
      const a = m.acquireSync();
      assert.deepEqual([a.token, a.ownerDied], [start + 1n, false]);
      a.release();
      patch(name, DIRTY, Buffer.from([1, 0, 0, 0])); // as if a holder had died
      const b = m.tryAcquire();
      assert.deepEqual([b.token, b.ownerDied], [start + 2n, true]);
      b.release();
      const c = await m.acquire();
      assert.deepEqual([c.token, c.ownerDied], [start + 3n, false]);
      // Contended, so the grant comes from a parked native thread.
      const other = await holderProcess();
      await other.do(`open ${name} 0`, 'opened');
      other.send('wait-async');
      await other.next('waiting');
      c.release();
      const d = await other.next('held');
      assert.deepEqual([BigInt(d.token), d.ownerDied], [start + 4n, false]);
      await other.do('release', 'released');
      // The largest token there is: still exact, ownerDied still its own bit.
      patch(name, TOKEN, u64(2n ** 64n - 2n));
      const e = m.acquireSync();
      assert.deepEqual([e.token, e.ownerDied], [2n ** 64n - 1n, false]);
      e.release();
      await other.end();
      m.close();
    });
  });

  describe('errno names', () => {
    it('every errno the addon can return has a named code, never UNKNOWN', () => {
      const { systemError } = require('../dist/errors');
      for (let errno = 1; errno <= 133; errno++) {
        const err = systemError(-errno, 'pthread_mutex_lock');
        assert.notEqual(err.code, 'UNKNOWN', `errno ${errno}`);
        assert.doesNotMatch(err.message, /unknown error/, `errno ${errno}`);
      }
      assert.equal(systemError(-131, 'pthread_mutex_lock').code, 'ENOTRECOVERABLE');
      assert.equal(systemError(-130, 'pthread_mutex_lock').code, 'EOWNERDEAD');
      assert.equal(systemError(-37, 'pthread_mutex_lock').code, 'ENOLCK');
    });
  });
});
