'use strict';
// Shared regions where Node runs in containers (issue 10, items 1-7): the
// region header's kind tag and PID namespace, 64-bit tokens, errno names.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Semaphore, SharedMutex } = require('..');
const { killChildren } = require('./support/helpers');
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
  return runNode.raw([...wrap, process.execPath, '-e', code]);
}
runNode.raw = (args, timeout = 20000) => {
  const r = spawnSync(args[0], args.slice(1), { cwd: ROOT, encoding: 'utf8', timeout, maxBuffer: 1 << 20 });
  const out = r.stdout.trim() === '' ? null : JSON.parse(r.stdout);
  return { status: r.status, signal: r.signal, stderr: r.stderr, out };
};

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
        this.skip(); // unshare -p -f --mount-proc needs CAP_SYS_ADMIN, missing here; printed above
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

  describe('a full /dev/shm (pages reserved at creation)', () => {
    it('a region that does not fit is LockError ENOSPC with syscall and path, its name removed, no SIGBUS', function () {
      this.timeout(30000);
      const code = `
        const fs = require('node:fs');
        const { SharedMutex } = require(${JSON.stringify(ROOT)});
        const out = {};
        try {
          new SharedMutex('too-big', { dataSize: 1024 * 1024 });
          out.big = 'opened';
        } catch (err) {
          out.big = { name: err.name, code: err.code, syscall: err.syscall, path: err.path };
        }
        out.left = fs.existsSync('/dev/shm/too-big');
        const m = new SharedMutex('fits', { dataSize: 1024 }); // the control: a region that fits works
        m.data[1023] = 7;
        m.acquireSync().release();
        out.small = m.data[1023];
        console.log(JSON.stringify(out));`;
      // The runtime's command line whole, as "$@": Deno rewrites `execPath -e
      // code` in any argv into its own eval command, which is longer.
      const script = 'mount -t tmpfs -o size=64k tmpfs /dev/shm && exec "$@"';
      const r = runNode.raw(['unshare', '-m', 'sh', '-c', script, 'sh', process.execPath, '-e', code]);
      if (r.status !== 0 && /mount|unshare/.test(r.stderr) && r.out === null && r.signal === null) {
        console.log(`      skipped: no private mount namespace with a small tmpfs here: ${r.stderr.trim()}`);
        this.skip(); // a private mount namespace with its own tmpfs needs CAP_SYS_ADMIN, missing here; printed above
      }
      assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
      assert.deepEqual(r.out, {
        big: { name: 'LockError', code: 'ENOSPC', syscall: 'posix_fallocate', path: '/dev/shm/too-big' },
        left: false,
        small: 7,
      });
    });
  });

  describe('the fault guard', () => {
    it('more than 4,096 regions mapped in one process: the last one truncated is an error, not SIGBUS', function () {
      this.timeout(60000);
      const prefix = `ilt-${process.pid}-many-`;
      const code = `
        const fs = require('node:fs');
        const { SharedMutex } = require(${JSON.stringify(ROOT)});
        const all = [];
        for (let i = 0; i < 4100; i++) all.push(new SharedMutex('${prefix}' + i));
        const last = all[all.length - 1];
        fs.truncateSync('/dev/shm/${prefix}4099', 0);
        let got;
        try {
          last.acquireSync({ timeout: 1000 });
          got = 'acquired';
        } catch (err) {
          got = err.code;
        }
        for (let i = 0; i < 4100; i++) fs.rmSync('/dev/shm/${prefix}' + i, { force: true });
        console.log(JSON.stringify({ got, first: all[0].tryAcquire() !== null }));`;
      try {
        const r = runNode.raw([process.execPath, '-e', code], 60000);
        assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
        assert.deepEqual(r.out, { got: 'ERR_INCOMPATIBLE_REGION', first: true }, r.stderr);
      } finally {
        for (const f of fs.readdirSync('/dev/shm'))
          if (f.startsWith(prefix)) fs.rmSync(`/dev/shm/${f}`, { force: true });
      }
    });

    it('the file cut under a holder mid-section: release() says writes were lost, the mutex is free, everyone hears "broken"', async () => {
      const name = uniqueName('cut');
      const size = 8192;
      const mapper = new SharedMutex(name, { dataSize: size }); // another user, mapped before the cut
      const holder = await holderProcess();
      await holder.do(`open ${name} ${size}`, 'opened');
      await holder.do('sync', 'held');
      fs.truncateSync(shm(name), 4096); // the header page survives, the end of data does not
      await holder.do('bytes 9', 'bytes'); // writes the last byte: past the end of the file now
      const released = await holder.ask('release', 'released');
      assert.deepEqual([released.tag, released.code], ['error', 'ERR_INCOMPATIBLE_REGION'], JSON.stringify(released));
      assert.match(released.message, /writes to its data may be lost/);
      assert.equal(SharedMutex.inspect(name).broken, true);
      // `interlock status --mutex` says so (exit 65) rather than promise ownerDied.
      const cli = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli', 'main.js'), 'status', '--mutex', name], {
        encoding: 'utf8',
      });
      assert.equal(cli.status, 65, cli.stdout + cli.stderr);
      assert.match(cli.stdout, /: broken\n.*lost writes/);
      assert.doesNotMatch(cli.stdout, /gets ownerDied/);
      // Not left locked (that would be ETIMEDOUT), and not usable either.
      assert.throws(() => mapper.acquireSync({ timeout: 3000 }), {
        code: 'ERR_INCOMPATIBLE_REGION',
        message: /broken/,
      });
      assert.throws(() => mapper.tryAcquire(), { code: 'ERR_INCOMPATIBLE_REGION' });
      const again = await holder.ask('sync', 'held');
      assert.deepEqual([again.tag, again.code], ['error', 'ERR_INCOMPATIBLE_REGION'], JSON.stringify(again));
      await holder.end();
      mapper.close();
    });
  });

  describe('the robust-list walk limit (2,048 per thread)', () => {
    it('the 2,049th SharedMutex one thread holds is refused (ENOLCK); after its death all 2,048 report ownerDied', async function () {
      this.timeout(60000);
      const prefix = `ilt-${process.pid}-robust-`;
      const code = `
        const { SharedMutex } = require(${JSON.stringify(ROOT)});
        const held = [];
        let refused = null;
        for (let i = 0; i < 2049; i++) {
          try {
            held.push(new SharedMutex('${prefix}' + i).acquireSync());
          } catch (err) {
            refused = { i, code: err.code };
          }
        }
        console.log(JSON.stringify({ held: held.length, refused }));
        process.kill(process.pid, 'SIGKILL');`;
      try {
        const r = runNode.raw([process.execPath, '-e', code], 60000);
        assert.equal(r.signal, 'SIGKILL', r.stderr);
        assert.deepEqual(r.out, { held: 2048, refused: { i: 2048, code: 'ENOLCK' } });
        for (const i of [0, 1, 1024, 2047]) {
          const m = new SharedMutex(`${prefix}${i}`);
          const h = m.tryAcquire();
          assert.ok(h !== null, `region ${i} still locked by the dead thread`);
          assert.equal(h.ownerDied, true, `region ${i}`);
          h.release();
          m.close();
        }
      } finally {
        for (const f of fs.readdirSync('/dev/shm'))
          if (f.startsWith(prefix)) fs.rmSync(`/dev/shm/${f}`, { force: true });
      }
    });
  });

  describe('regions of other users', () => {
    it('owned by another uid (0666): refused with EACCES naming the owner; allowForeignOwner with a matching mode opens it', function () {
      if (process.getuid() !== 0) {
        console.log('      skipped: needs root to give a region to uid 65534');
        this.skip(); // not root: cannot give a region to uid 65534; printed above
      }
      const name = uniqueName('squat');
      new SharedMutex(name, { mode: 0o666 }).close();
      fs.chownSync(shm(name), 65534, 65534); // as if uid 65534 had squatted the name first
      fs.chmodSync(shm(name), 0o666);
      assert.throws(() => new SharedMutex(name), {
        name: 'LockError',
        code: 'EACCES',
        errno: -13,
        syscall: 'open',
        path: shm(name),
        message: /owned by uid 65534.*allowForeignOwner/,
      });
      assert.throws(() => new SharedMutex(name, { allowForeignOwner: true }), {
        code: 'EACCES',
        message: /mode 0666, writable by users that options.mode 0600 excludes/,
      });
      const shared = new SharedMutex(name, { allowForeignOwner: true, mode: 0o666 });
      shared.tryAcquire().release();
      shared.close();
      // Our own region, made wider than the mode we now ask for, is refused too.
      const mine = uniqueName('wide');
      new SharedMutex(mine, { mode: 0o600 }).close();
      fs.chmodSync(shm(mine), 0o622);
      assert.throws(() => new SharedMutex(mine), { code: 'EACCES', message: /mode 0622/ });
      assert.throws(() => new SharedMutex('x', { allowForeignOwner: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
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
