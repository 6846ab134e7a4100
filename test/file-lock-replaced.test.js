'use strict';
// A thread files each open lock file under its `dev:ino` too, so another name
// of the same file finds the same queue (file-lock-names.test.js). Once the
// file at a lock's path is replaced, its queue follows the path to the new
// file, and the old identity must stop finding that queue: a hard link to the
// old file, or a new file that reuses the freed inode number, is another lock.
// (Found by the fuzzer, issue 10: seed 625386658, a FileLock never granted.)
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FileLock } = require('..');
const { tmpDir, othersCanLock } = require('./support/helpers');

/** Holds `a`, lets another name or file take the place of its inode, and returns the hold on a's new file. */
function replaceWhileHeld(a, makeOther) {
  const lock = new FileLock(a);
  const first = lock.acquireSync();
  const old = fs.statSync(a).ino;
  makeOther?.();
  fs.rmSync(a);
  fs.writeFileSync(a, ''); // a new file at a's path (a new inode: the old one is still open)
  first.release();
  const held = lock.acquireSync({ timeout: 1000 }); // finds a replaced, moves to the new file
  assert.notEqual(fs.statSync(a).ino, old);
  return { lock, held, old };
}

describe('FileLock: a replaced file gives up its identity', () => {
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpDir(), 'replaced-'));
  });

  it('a hard link to the replaced file is its own lock, free while the new file is held', () => {
    const a = path.join(dir, 'a.lock');
    const c = path.join(dir, 'c.lock');
    const { lock, held, old } = replaceWhileHeld(a, () => fs.linkSync(a, c));
    assert.equal(fs.statSync(c).ino, old, 'c names the old file');
    const other = new FileLock(c);
    const h = other.tryAcquire();
    assert.ok(h, 'c is another file than the one held (it joined the queue of a instead)');
    assert.equal(othersCanLock(c), false, 'and c itself is what this thread locked');
    assert.equal(othersCanLock(a), false);
    h.release();
    held.release();
    assert.equal(othersCanLock(c), true);
    other.close();
    lock.close();
  });

  it('a new file that reuses the freed inode number is granted (it waited behind the old queue)', async function () {
    const a = path.join(dir, 'a.lock');
    const { lock, held, old } = replaceWhileHeld(a);
    // The old inode was freed when the lock moved to the new file; ext4
    // hands its number to the next file made in the directory, tmpfs never.
    let b;
    for (let i = 0; i < 8 && b === undefined; i++) {
      const f = path.join(dir, `b${i}.lock`);
      fs.writeFileSync(f, '');
      if (fs.statSync(f).ino === old) b = f;
    }
    if (b === undefined) {
      console.log(`      skipped: ${dir}'s filesystem did not reuse inode ${old} for a new file (tmpfs never does)`);
      this.skip(); // this filesystem did not reuse the inode number (tmpfs never does); the hard-link case covers the path anywhere
    }
    const other = new FileLock(b);
    const h = await other.acquire({ timeout: 2000 });
    assert.equal(othersCanLock(b), false, 'the new file is what this thread locked');
    h.release();
    held.release();
    other.close();
    lock.close();
  });
});
