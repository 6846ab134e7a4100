'use strict';
// Which file a FileLock locks, whatever it was named by (issue 10, items 8
// and 9): Buffer paths keep their bytes, file: URLs follow Node's rules, and
// a file reached through a hard link or a symlinked directory is one lock.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { FileLock } = require('..');
const { tmpDir, fdsOn, othersCanLock } = require('./support/helpers');

/** Whether python3 could flock the file whose name is these bytes (hex) right now. */
function pythonCanLock(bytes) {
  const script =
    'import fcntl, os, sys\n' +
    'fd = os.open(bytes.fromhex(sys.argv[1]), os.O_RDONLY)\n' +
    'try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(1)\n';
  const r = spawnSync('python3', ['-c', script, bytes.toString('hex')], { encoding: 'utf8' });
  assert.ok(r.status === 0 || r.status === 1, `python3 failed: ${r.stderr}`);
  return r.status === 0;
}

/**
 * The names in `dir` as raw bytes, listed by python3: Deno's readdir
 * decodes names as UTF-8 even with encoding 'buffer' (its read_dir is lossy:
 * denoland/deno#34623), which would hide the very bytes this file checks.
 */
function namesIn(dir) {
  const script = 'import os, sys\nprint(" ".join(n.hex() for n in os.listdir(os.fsencode(sys.argv[1]))))\n';
  const r = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `python3 failed: ${r.stderr}`);
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map((hex) => Buffer.from(hex, 'hex'));
}

describe('FileLock names', () => {
  let dir;
  before(() => {
    dir = tmpDir();
  });

  describe('Buffer paths keep their bytes (item 8)', () => {
    it('locks the file named by non-UTF-8 bytes, not a U+FFFD look-alike', async () => {
      const name = Buffer.from([0x6c, 0x6b, 0x2d, 0xff, 0xfe]); // "lk-" then bytes that are not UTF-8
      const file = Buffer.concat([Buffer.from(`${dir}/`), name]);
      const lock = new FileLock(file);
      const h = await lock.acquire();
      const names = namesIn(dir).filter((n) => n.subarray(0, 3).toString() === 'lk-');
      assert.deepEqual(names, [name], 'the file created is the one with these bytes');
      assert.equal(pythonCanLock(file), false, 'another process sees that very file locked');
      h.release();
      assert.equal(pythonCanLock(file), true);
      lock.close();
    });

    it('two names that differ only in non-UTF-8 bytes are two locks', () => {
      const a = new FileLock(Buffer.concat([Buffer.from(`${dir}/two-`), Buffer.from([0xff])]));
      const b = new FileLock(Buffer.concat([Buffer.from(`${dir}/two-`), Buffer.from([0xfe])]));
      const ha = a.acquireSync();
      const hb = b.tryAcquire();
      assert.ok(hb, 'a different file: free while the first is held');
      hb.release();
      ha.release();
      a.close();
      b.close();
    });

    it('a relative Buffer path is resolved against the current directory', () => {
      const lock = new FileLock(Buffer.from(path.relative(process.cwd(), path.join(dir, 'rel.lock'))));
      assert.equal(lock.path, path.join(dir, 'rel.lock'));
      const h = lock.acquireSync();
      assert.equal(othersCanLock(path.join(dir, 'rel.lock')), false);
      h.release();
      lock.close();
    });
  });

  describe('file: URLs by Node rules (item 8)', () => {
    it('percent-escapes decode as Node does', () => {
      const lock = new FileLock(new URL(`file://${dir}/with%20space.lock`));
      assert.equal(lock.path, path.join(dir, 'with space.lock'));
      const h = lock.acquireSync();
      assert.equal(othersCanLock(path.join(dir, 'with space.lock')), false);
      h.release();
      lock.close();
    });

    it('a host is refused (ERR_INVALID_FILE_URL_HOST), not dropped', () => {
      assert.throws(() => new FileLock(new URL(`file://example.com${dir}/x.lock`)), {
        name: 'TypeError',
        code: 'ERR_INVALID_FILE_URL_HOST',
      });
    });

    it("an encoded '/' is refused (ERR_INVALID_FILE_URL_PATH), not decoded into a separator", () => {
      fs.mkdirSync(path.join(dir, 'a'), { recursive: true });
      assert.throws(() => new FileLock(new URL(`file://${dir}/a%2Fx.lock`)), {
        name: 'TypeError',
        code: 'ERR_INVALID_FILE_URL_PATH',
      });
    });

    it('escapes that are not UTF-8 are refused with ERR_INVALID_ARG_VALUE (a Buffer takes such bytes)', () => {
      assert.throws(() => new FileLock(new URL(`file://${dir}/%FF.lock`)), {
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_VALUE',
        message: /UTF-8/,
      });
    });
  });

  describe('one file by another name is one lock (item 9)', () => {
    // Each alias is checked for: one fd between the names, EDEADLK from
    // acquireSync (with a timeout, so the code before the fix fails with
    // ETIMEDOUT instead of hanging), null from tryAcquire, and FIFO order.
    const aliases = {
      'a hard link': (base) => {
        const file = path.join(base, 'real.lock');
        fs.writeFileSync(file, '');
        fs.linkSync(file, path.join(base, 'hard.lock'));
        return [file, path.join(base, 'hard.lock')];
      },
      'a symlinked directory': (base) => {
        fs.mkdirSync(path.join(base, 'real'));
        fs.symlinkSync(path.join(base, 'real'), path.join(base, 'via'));
        return [path.join(base, 'real', 'x.lock'), path.join(base, 'via', 'x.lock')];
      },
    };
    for (const [what, make] of Object.entries(aliases)) {
      it(`${what}: acquireSync through the alias is EDEADLK, tryAcquire null, one fd, FIFO`, async () => {
        const base = fs.mkdtempSync(path.join(dir, 'alias-'));
        const [first, alias] = make(base);
        const a = new FileLock(first);
        const b = new FileLock(alias);
        const held = a.acquireSync();
        assert.throws(() => b.acquireSync({ timeout: 300 }), { code: 'EDEADLK', name: 'LockError' });
        assert.equal(b.tryAcquire(), null);
        assert.equal(fdsOn(first), 1, 'both names share one fd');
        const order = [];
        const waits = [b, a, b].map((lock, i) =>
          lock.acquire().then((h) => {
            order.push(i);
            h.release();
          }),
        );
        held.release();
        await Promise.all(waits);
        assert.deepEqual(order, [0, 1, 2], 'one FIFO queue across both names');
        a.close();
        b.close();
        assert.equal(fdsOn(first), 0, 'closing both closes the fd');
      });
    }

    it('after every instance is closed, the alias opens afresh', () => {
      const base = fs.mkdtempSync(path.join(dir, 'again-'));
      const [first, alias] = aliases['a hard link'](base);
      const a = new FileLock(first);
      a.acquireSync().release();
      a.close();
      const b = new FileLock(alias);
      const h = b.acquireSync({ timeout: 1000 });
      assert.equal(othersCanLock(first), false);
      h.release();
      b.close();
    });
  });
});
