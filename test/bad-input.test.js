'use strict';
// Bad input, row by row: each gives a typed error with Node's codes (system
// errors also errno, syscall and path), argument errors throw synchronously,
// and no row leaves an fd open. Lifecycle misuse (double release, release or
// acquire after close) is a no-op or ERR_LOCK_CLOSED.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FileLock, LockError, flock, flockSync } = require('..');
const { tmpDir, openFiles, filesOpenedSince, othersCanLock, execAsNobody } = require('./support/helpers');

const { errno: E } = require('node:os').constants;
const NOT_AN_FD = 2 ** 30; // valid as an argument, never open

describe('bad input', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'ok.lock');
  const missingDir = path.join(dir, 'no-such-dir', 'x.lock');
  const missingFile = path.join(dir, 'missing.lock');
  const longName = path.join(dir, 'n'.repeat(300));
  const link = path.join(dir, 'link.lock');
  fs.writeFileSync(file, '');
  fs.symlinkSync(file, link);
  const opened = []; // locks made by rows, closed after each row's fd count
  const make = (...args) => {
    const lock = new FileLock(...args);
    opened.push(lock);
    return lock;
  };
  const fdRow = (fn) => {
    const fd = fs.openSync(file, 'r');
    try {
      return fn(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  const sys = (code, p, syscall = 'open') => ({ type: LockError, code, errno: -E[code], syscall, path: p });
  const argType = { type: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
  const argValue = { type: TypeError, code: 'ERR_INVALID_ARG_VALUE' };
  const range = { type: RangeError, code: 'ERR_OUT_OF_RANGE' };
  const closed = { type: LockError, code: 'ERR_LOCK_CLOSED' };

  // [name, run, expected error, async?]: async rows return a rejected
  // promise; every other row throws synchronously.
  const rows = [
    ['path is a number', () => make(42), argType],
    ['path is a plain object', () => make({ path: file }), argType],
    ['path is undefined', () => make(), argType],
    ['path is null', () => make(null), argType],
    ['path is empty', () => make(''), argValue],
    ['path has a NUL byte', () => make(`${file}\0x`), argValue],
    ['path is an http: URL', () => make(new URL('http://example.com/x.lock')), argValue],
    ['options is a string', () => make(file, 'rw'), argType],
    ['options is null', () => make(file, null), argType],
    ['mode is a string', () => make(file, { mode: '0600' }), argType],
    ['mode is negative', () => make(file, { mode: -1 }), range],
    ['mode is too large', () => make(file, { mode: 0o10000 }), range],
    ['mode is fractional', () => make(file, { mode: 1.5 }), range],
    ['create is not a boolean', () => make(file, { create: 'yes' }), argType],
    ['acquire options is a number', () => make(file).acquire(5), argType],
    ['shared is not a boolean', () => make(file).acquire({ shared: 'yes' }), argType],
    ['timeout is a string', () => make(file).acquire({ timeout: '10' }), argType],
    ['timeout is NaN', () => make(file).acquire({ timeout: Number.NaN }), range],
    ['timeout is negative', () => make(file).acquire({ timeout: -1 }), range],
    ['timeout is huge', () => make(file).acquire({ timeout: 2 ** 31 }), range],
    ['timeout is -Infinity', () => make(file).acquire({ timeout: Number.NEGATIVE_INFINITY }), range],
    ['signal is a string', () => make(file).acquire({ signal: 'abort' }), argType],
    ['signal is a plain object', () => make(file).acquire({ signal: { aborted: false } }), argType],
    ['tryAcquire shared is a number', () => make(file).tryAcquire({ shared: 1 }), argType],
    ['acquireSync timeout is NaN', () => make(file).acquireSync({ timeout: Number.NaN }), range],
    ['run fn is not a function', () => make(file).run('work'), argType],
    ['runSync fn is not a function', () => make(file).runSync(undefined), argType],
    ['missing directory: acquire', () => make(missingDir).acquire(), sys('ENOENT', missingDir), true],
    ['missing directory: tryAcquire', () => make(missingDir).tryAcquire(), sys('ENOENT', missingDir)],
    ['missing directory: acquireSync', () => make(missingDir).acquireSync(), sys('ENOENT', missingDir)],
    ['a directory', () => make(dir).acquire(), sys('EISDIR', dir), true],
    [
      'create:false on a missing file',
      () => make(missingFile, { create: false }).acquire(),
      sys('ENOENT', missingFile),
      true,
    ],
    ['name too long', () => make(longName).acquire(), sys('ENAMETOOLONG', longName), true],
    ['a symlink (O_NOFOLLOW)', () => make(link).tryAcquire(), sys('ELOOP', link)],
    ['acquire after close', () => closedLock().acquire(), closed, true],
    ['tryAcquire after close', () => closedLock().tryAcquire(), closed],
    ['acquireSync after close', () => closedLock().acquireSync(), closed],
    ['flock fd is a string', () => flock('3', 'ex'), argType],
    ['flock fd is negative', () => flock(-1, 'ex'), range],
    ['flock fd is fractional', () => flockSync(1.5, 'ex'), range],
    ['flock op is unknown', () => fdRow((fd) => flock(fd, 'exclusive')), argValue],
    ['flockSync op is missing', () => fdRow((fd) => flockSync(fd)), argValue],
    ['flock options is a string', () => fdRow((fd) => flock(fd, 'ex', 'nb')), argType],
    ['flock nonblocking is a number', () => fdRow((fd) => flockSync(fd, 'ex', { nonblocking: 1 })), argType],
    ['flock timeout is negative', () => fdRow((fd) => flock(fd, 'ex', { timeout: -5 })), range],
    ['flock signal is a number', () => fdRow((fd) => flock(fd, 'ex', { signal: 1 })), argType],
    ['flockSync on a closed fd', () => flockSync(NOT_AN_FD, 'ex'), sys('EBADF', undefined, 'flock')],
    ['flock on a closed fd', () => flock(NOT_AN_FD, 'sh'), sys('EBADF', undefined, 'flock'), true],
  ];

  function closedLock() {
    const lock = make(file);
    lock.close();
    return lock;
  }

  afterEach(() => {
    for (const lock of opened.splice(0)) lock.close();
  });

  it(`has at least 20 rows (${rows.length})`, () => {
    assert.ok(rows.length >= 20);
  });

  for (const [name, run, expected, isAsync] of rows) {
    it(`${name}: ${expected.type.name} ${expected.code}`, async () => {
      const before = openFiles();
      let thrown;
      let result;
      try {
        result = run();
      } catch (err) {
        thrown = err;
      }
      if (isAsync) {
        assert.equal(thrown, undefined, `rejects rather than throws: ${thrown}`);
        assert.ok(result instanceof Promise, 'returns a promise');
        thrown = await result.then(
          () => assert.fail('resolved'),
          (err) => err,
        );
      } else {
        if (result instanceof Promise) {
          result.catch(() => {});
          assert.fail('returned a promise instead of throwing synchronously');
        }
        assert.ok(thrown !== undefined, `threw nothing, returned ${result}`);
      }
      assert.ok(thrown instanceof expected.type, `${expected.type.name} expected, got ${thrown?.stack ?? thrown}`);
      assert.equal(thrown.code, expected.code, thrown.message);
      for (const key of ['errno', 'syscall', 'path']) {
        if (key in expected) assert.equal(thrown[key], expected[key], `${key} of ${thrown.message}`);
      }
      assert.deepEqual(filesOpenedSince(before), [], 'a failed call leaves no fd open');
      for (const lock of opened.splice(0)) lock.close();
      assert.deepEqual(filesOpenedSince(before), [], 'no fd left after close()');
    });
  }

  it('permission denied (as uid 65534): EACCES from every API, no fd left in the child', async function () {
    if (process.getuid() !== 0) this.skip(); // needs root to switch users; root itself bypasses the mode
    const denied = path.join(tmpDir(), 'root-only.lock');
    fs.chmodSync(path.dirname(denied), 0o755);
    fs.writeFileSync(denied, '', { mode: 0o600 });
    const stdout = await execAsNobody('acquire-denied.js', [denied]);
    const out = JSON.parse(stdout);
    assert.equal(out.uid, 65534);
    const expected = {
      lockError: true,
      name: 'LockError',
      code: 'EACCES',
      errno: -E.EACCES,
      syscall: 'open',
      path: denied,
    };
    assert.deepEqual(out.acquire, expected);
    assert.deepEqual(out.tryAcquire, expected);
    assert.deepEqual(out.acquireSync, expected);
    assert.equal(out.fdsAfter, out.fdsBefore, 'no fd left open in the child');
  });

  it('double release is a no-op: it does not release a later holder', async () => {
    const before = openFiles();
    const lock = make(file);
    const h = await lock.acquire();
    h.release();
    const h2 = lock.tryAcquire();
    assert.ok(h2, 'free after the first release');
    h.release(); // must not touch h2's hold
    h[Symbol.dispose]();
    assert.equal(h.released, true);
    assert.equal(h2.released, false);
    assert.equal(othersCanLock(file), false, 'h2 still holds the lock');
    h2.release();
    assert.equal(othersCanLock(file), true);
    lock.close();
    assert.deepEqual(filesOpenedSince(before), []);
  });

  it('release after close is a no-op; close releases, twice is fine; other instances keep theirs', async () => {
    const before = openFiles();
    const a = make(file, {});
    const b = make(file);
    const h = await a.acquire({ shared: true });
    const hb = await b.acquire({ shared: true });
    a.close();
    assert.equal(h.released, true, 'close() released what this instance held');
    h.release();
    a.close();
    assert.equal(hb.released, false);
    assert.equal(othersCanLock(file), false, 'b still holds it shared');
    assert.equal(othersCanLock(file, { shared: true }), true);
    hb.release();
    assert.equal(othersCanLock(file), true);
    b.close();
    assert.deepEqual(filesOpenedSince(before), [], 'closing every instance closes the fd');
  });
});
