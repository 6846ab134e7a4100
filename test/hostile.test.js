'use strict';
// Hostile files (issue 7): a lock path swapped between calls for a symlink, a
// FIFO or a directory while a FileLock has its fd cached; a SharedMutex region
// grown, scribbled over or truncated while other processes have it mapped;
// names and paths that belong to another user (as uid 65534).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { FileLock, SharedMutex } = require('..');
const { tmpDir, fdCount, holdFlock, othersCanLock, killChildren, execAsNobody } = require('./support/helpers');
const { uniqueName, cleanupNames, holderProcess } = require('./fixtures/mutex-driver');

const { errno: E } = require('node:os').constants;
const shm = (name) => `/dev/shm/${name}`;
const sys = (code, p, syscall = 'open') => ({ name: 'LockError', code, errno: -E[code], syscall, path: p });

const pick = (err) => ({ name: err.name, code: err.code, errno: err.errno, syscall: err.syscall, path: err.path });

/** fds of this process still open on an unlinked `file` (an orphaned lock file). */
function orphanFds(file) {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === `${file} (deleted)`) n++;
    } catch {}
  }
  return n;
}

describe('hostile files', () => {
  afterEach(killChildren);
  after(cleanupNames);

  describe('FileLock: the path is swapped between calls (its fd is cached)', () => {
    let dir;
    let file;
    let lock;
    beforeEach(() => {
      dir = tmpDir();
      file = path.join(dir, 'swap.lock');
      fs.writeFileSync(file, '');
      lock = new FileLock(file);
      lock.tryAcquire().release(); // opens and keeps the fd
    });
    afterEach(() => lock.close());

    /** Every acquiring form fails with `expected` and holds nothing; the orphan's fd is gone. */
    async function refusedEverywhere(expected) {
      assert.throws(() => lock.tryAcquire(), expected);
      assert.throws(() => lock.acquireSync({ timeout: 1000 }), expected);
      await assert.rejects(lock.acquire({ timeout: 1000 }), expected);
      assert.equal(orphanFds(file), 0, 'the fd on the old inode was closed');
    }

    /** Puts a regular file back: the same FileLock works again, exclusively. */
    async function restoredWorks() {
      fs.rmSync(file, { recursive: true, force: true });
      fs.writeFileSync(file, '');
      const h = await lock.acquire({ timeout: 1000 });
      assert.equal(othersCanLock(file), false, 'the new file is really locked');
      h.release();
      assert.equal(othersCanLock(file), true);
    }

    it('unlinked and replaced by a symlink: ELOOP from every form; flock(1) through the link is not excluded by us', async () => {
      const target = path.join(dir, 'target');
      fs.writeFileSync(target, '');
      const fds = fdCount();
      fs.unlinkSync(file);
      fs.symlinkSync(target, file);
      await refusedEverywhere(sys('ELOOP', file));
      // The orphan's fd closed, and with it the fd of its marks region (file_marks.h).
      assert.equal(fdCount(), fds - 2, 'no fd but the closed orphan and its marks changed');
      assert.equal(othersCanLock(file), true, 'we hold nothing (flock(1) follows the link)');
      await restoredWorks();
    });

    it('a symlink renamed over it (atomic swap): ELOOP', async () => {
      const tmp = path.join(dir, 'incoming');
      fs.symlinkSync('/etc/passwd', tmp);
      fs.renameSync(tmp, file);
      await refusedEverywhere(sys('ELOOP', file));
      await restoredWorks();
    });

    it('replaced by a FIFO: EINVAL at once (open is O_NONBLOCK and the file is not regular); a new FileLock too', async () => {
      fs.unlinkSync(file);
      execFileSync('mkfifo', [file]);
      const t0 = Date.now();
      await refusedEverywhere(sys('EINVAL', file));
      assert.throws(() => new FileLock(file).tryAcquire(), sys('EINVAL', file));
      assert.ok(Date.now() - t0 < 2000, 'nothing blocked on the FIFO');
      await restoredWorks();
    });

    it('replaced by a FIFO while held: release still works, then EINVAL', async () => {
      const h = lock.tryAcquire();
      fs.unlinkSync(file);
      execFileSync('mkfifo', [file]);
      h.release();
      await refusedEverywhere(sys('EINVAL', file));
      await restoredWorks();
    });

    it('replaced by a directory: EISDIR', async () => {
      fs.unlinkSync(file);
      fs.mkdirSync(file);
      await refusedEverywhere(sys('EISDIR', file));
      await restoredWorks();
    });

    it('a waiter whose path becomes a directory while it waits is rejected with EISDIR, never granted the orphan', async () => {
      const holder = await holdFlock(file);
      const waiting = lock.acquire({ timeout: 10000 }).then(
        (h) => h,
        (err) => err,
      );
      fs.unlinkSync(file);
      fs.mkdirSync(file);
      await holder.release(); // the waiter's flock on the orphan succeeds now
      const err = await waiting;
      assert.ok(err instanceof Error, 'not granted');
      assert.deepEqual({ ...sys('EISDIR', file), name: err.name }, pick(err));
      assert.equal(orphanFds(file), 0);
      await restoredWorks();
    });

    it('moved away and replaced by a new file: the next holder locks the file now at the path (no two holders)', () => {
      // The cached fd's inode keeps a link (file.old), so fstat's nlink is 1.
      fs.renameSync(file, `${file}.old`);
      fs.writeFileSync(file, '');
      const h = lock.tryAcquire();
      assert.ok(h !== null);
      try {
        assert.equal(othersCanLock(file), false, 'another process could lock the path while we hold the lock');
      } finally {
        h.release();
      }
    });
  });

  describe('SharedMutex: the region file is changed while others have it mapped', () => {
    /** Two processes with `name` mapped (dataSize 64); the first holds it. */
    async function holderAndMapper() {
      const name = uniqueName('hostile');
      const holder = await holderProcess();
      await holder.do(`open ${name} 64`, 'opened');
      const held = await holder.do('sync', 'held');
      const mapper = await holderProcess();
      await mapper.do(`open ${name} 64`, 'opened');
      return { name, holder, mapper, held };
    }

    /** The fixture's answer, or `{ tag: 'died', signal }` if it dies first. */
    function answer(proc, cmd, tag) {
      return Promise.race([
        proc.ask(cmd, tag),
        proc.exited.then(({ code, signal }) => ({ tag: 'died', code, signal })),
      ]);
    }

    /** A new opener on this thread: ERR_INCOMPATIBLE_REGION, or what it got instead. */
    function newOpener(name) {
      let m;
      try {
        m = new SharedMutex(name, { dataSize: 64 });
      } catch (err) {
        return err;
      }
      const h = m.tryAcquire();
      m.close();
      return { opened: true, granted: h !== null };
    }

    const incompatible = (name) => ({ name: 'LockError', code: 'ERR_INCOMPATIBLE_REGION', path: shm(name) });

    it('grown: the next opener is refused; holders go on, tokens continuing', async () => {
      const { name, holder, mapper, held } = await holderAndMapper();
      fs.truncateSync(shm(name), fs.statSync(shm(name)).size + 4096);
      assert.throws(() => new SharedMutex(name, { dataSize: 64 }), incompatible(name));
      assert.equal((await mapper.do('try', 'try')).ok, false, 'still held by the first');
      await holder.do('release', 'released');
      const next = await mapper.do('try', 'try');
      assert.equal(next.ok, true);
      assert.equal(next.ownerDied, false);
      assert.equal(BigInt(next.token), BigInt(held.token) + 1n);
    });

    it('header fields scribbled over (magic, layout, abi): the next opener is refused; holders go on', async () => {
      const { name, holder, mapper, held } = await holderAndMapper();
      const fd = fs.openSync(shm(name), 'r+');
      fs.writeSync(fd, Buffer.alloc(48, 0x5a), 0, 48, 0);
      fs.closeSync(fd);
      assert.throws(() => new SharedMutex(name, { dataSize: 64 }), incompatible(name));
      await holder.do('release', 'released');
      const next = await mapper.do('try', 'try');
      assert.equal(next.ok, true);
      assert.equal(BigInt(next.token), BigInt(held.token) + 1n);
    });

    /** Overwrites the first `bytes` bytes of the region file with 0xa5. */
    function scribble(name, bytes) {
      const fd = fs.openSync(shm(name), 'r+');
      fs.writeSync(fd, Buffer.alloc(bytes, 0xa5), 0, bytes, 0);
      fs.closeSync(fd);
    }

    it("the loaded addon never parks in glibc's robust-mutex lock, whose futex EFAULT (a page cut under a waiter) aborts the process", () => {
      // glibc treats EFAULT from a futex wait as fatal; the kernel answers it
      // when the region is truncated between glibc touching the lock word and
      // the call. So parked waiters must use trylock plus a futex wait of our own.
      // Ours only (build/Release/interlock.node or a prebuild's
      // interlock.glibc.node): other addons may be loaded (the worker suite).
      const addons = new Set();
      for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
        const file = line.slice(line.indexOf('/'));
        if (line.includes('/') && /^interlock\b.*\.node$/.test(path.basename(file))) addons.add(file);
      }
      assert.ok(addons.size > 0, 'no interlock .node file mapped: the addon was not found');
      for (const file of addons) {
        const syms = execFileSync('readelf', ['--dyn-syms', '-W', file], { encoding: 'utf8' });
        assert.match(syms, /pthread_mutex_trylock/, `${file}: readelf listed no pthread symbols`);
        for (const call of ['pthread_mutex_timedlock', 'pthread_mutex_clocklock']) {
          assert.ok(!new RegExp(`\\b${call}\\b`).test(syms), `${file} imports ${call}`);
        }
      }
    });

    // Damage that leaves the mutex itself unusable. Touching a page past the
    // end of a shared file mapping raises SIGBUS (truncation to 0); within
    // the first page the bytes just read as zero (to 64) and the mutex looks
    // free; scribbled, glibc sees a mutex type it does not know.
    const damages = [
      ['truncated to 0', (name) => fs.truncateSync(shm(name), 0)],
      ['truncated to 64 bytes', (name) => fs.truncateSync(shm(name), 64)],
      ['its header and mutex scribbled over', (name) => scribble(name, 256)],
    ];
    for (const [title, damage] of damages) {
      it(`${title} while held: holder, idle mapper and parked waiter live and get ERR_INCOMPATIBLE_REGION; no opener rebuilds it`, async () => {
        const { name, holder, mapper } = await holderAndMapper();
        const waiter = await holderProcess();
        await waiter.do(`open ${name} 64`, 'opened');
        waiter.send('wait-async'); // its native thread polls the mutex every few ms
        await waiter.next('waiting');
        damage(name);
        const got = newOpener(name);
        assert.ok(!got.granted, 'a second holder: a new opener rebuilt the region under its users');
        assert.equal(got.code, 'ERR_INCOMPATIBLE_REGION', JSON.stringify(got));
        const tried = await answer(mapper, 'try', 'try');
        assert.notEqual(tried.tag, 'died', `the idle mapper died on its next tryAcquire: ${tried.signal}`);
        assert.ok(!(tried.tag === 'try' && tried.ok), `a second holder: ${JSON.stringify(tried)}`);
        assert.deepEqual([tried.tag, tried.code], ['error', 'ERR_INCOMPATIBLE_REGION'], JSON.stringify(tried));
        const waited = await Promise.race([
          waiter.next('held'),
          waiter.exited.then(({ signal }) => ({ tag: 'died', signal })),
        ]);
        assert.notEqual(waited.tag, 'died', `the parked waiter died: ${waited.signal}`);
        assert.deepEqual([waited.tag, waited.code], ['error', 'ERR_INCOMPATIBLE_REGION'], JSON.stringify(waited));
        const released = await answer(holder, 'release', 'released');
        assert.notEqual(released.tag, 'died', `the holder died releasing: ${released.signal}`);
        const again = await answer(holder, 'sync', 'held');
        assert.deepEqual([again.tag, again.code], ['error', 'ERR_INCOMPATIBLE_REGION'], JSON.stringify(again));
      });
    }
  });

  describe('names and paths of another user (as uid 65534)', () => {
    it('EACCES/EPERM with path and syscall from SharedMutex and FileLock; no fd left', async function () {
      if (process.getuid() !== 0) this.skip(); // needs root to switch users
      const name = uniqueName('root-only');
      new SharedMutex(name, { dataSize: 8 }).close(); // root's, mode 0600
      const dir = tmpDir();
      fs.chmodSync(dir, 0o755); // others may enter, not create
      const readable = path.join(dir, 'readable.lock');
      fs.writeFileSync(readable, '', { mode: 0o644 });
      const missing = path.join(dir, 'missing.lock');
      const stdout = await execAsNobody('hostile-other-user.js', [name, readable, missing]);
      const out = JSON.parse(stdout);
      assert.equal(out.uid, 65534);
      assert.deepEqual(out.open, sys('EACCES', shm(name)));
      assert.deepEqual(out.inspect, sys('EACCES', shm(name)));
      assert.deepEqual(out.unlink, sys('EPERM', shm(name), 'unlink')); // /dev/shm is sticky
      assert.equal(out.readOnlyFile, 'succeeded', 'a file we may only read is locked through a read-only fd');
      assert.deepEqual(out.createInDir, sys('EACCES', missing));
      assert.equal(out.fdsAfter, out.fdsBefore, 'no fd left open in the child');
      assert.ok(fs.existsSync(shm(name)), 'the region is still there');
      assert.ok(!fs.existsSync(missing), 'nothing was created');
      assert.ok(out.lockErrors, 'every error is a LockError');
    });
  });
});
