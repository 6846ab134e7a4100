'use strict';
// A lock file the caller may read but not write (issue 10, item 7): flock(2)
// needs no write access, so FileLock opens it read-only instead of failing
// with EACCES. As root (which ignores modes) the holder runs as uid 65534,
// from a copy of the package in a temp dir it can read (the checkout may be
// under /root); otherwise this process locks a mode 0444 file itself.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FileLock } = require('..');
const { tmpDir, othersCanLock, startTracked, killChildren } = require('./support/helpers');

const ROOT = path.join(__dirname, '..');

/** dist/, the built addon and node-gyp-build, copied where any user can read them. */
function readablePackage() {
  const dir = tmpDir('interlock-pkg-');
  fs.chmodSync(dir, 0o755);
  for (const part of ['package.json', 'dist', 'build/Release/interlock.node', 'node_modules/node-gyp-build']) {
    fs.cpSync(path.join(ROOT, part), path.join(dir, part), { recursive: true });
  }
  const holder = path.join(dir, 'hold-readonly.js');
  fs.writeFileSync(
    holder,
    `const { FileLock } = require('.');
     const lock = new FileLock(process.argv[2]);
     lock.acquire().then(() => {
       process.stdout.write('held ' + process.getuid() + '\\n');
       setInterval(() => {}, 60000);
     }, (err) => { process.stderr.write(err.stack + '\\n'); process.exit(1); });`,
  );
  return holder;
}

describe('lock files the caller may only read', () => {
  afterEach(killChildren);

  it('are locked through a read-only fd, and exclude other processes', async () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'read-only.lock');
    fs.writeFileSync(file, '', { mode: 0o444 });
    fs.chmodSync(file, 0o444);
    if (process.getuid() === 0) {
      const holder = readablePackage();
      const { child, started } = startTracked(process.execPath, [holder, file], 'held', { uid: 65534, gid: 65534 });
      await started;
      assert.equal(othersCanLock(file), false, 'uid 65534 holds the root-owned 0444 file');
      process.kill(-child.pid, 'SIGKILL');
    } else {
      const lock = new FileLock(file);
      const h = await lock.acquire();
      assert.equal(othersCanLock(file), false, 'held through a read-only fd');
      assert.equal(lock.tryAcquire(), null);
      h.release();
      assert.equal(othersCanLock(file), true);
      lock.close();
    }
  });
});
