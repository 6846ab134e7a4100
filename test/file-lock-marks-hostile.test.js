'use strict';
// A FileLock whose marks region (native/core/file_marks.h) cannot be used —
// garbage or another kind of region at its name, another user's file planted
// there, a file cut under its users, a full /dev/shm — still locks, alone:
// its handles carry token 0n and no ownerDied news, one process warning
// (INTERLOCK_NO_MARKS) says why, and the planted file is left as it was.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { FileLock, SharedMutex } = require('..');
const { killChildren, othersCanLock, startTracked, tmpDir, within } = require('./support/helpers');
const { marksRegionOf: regionOf } = require('./support/file-marks');

const ROOT = path.join(__dirname, '..');
const NOBODY = 65534;

/** The warnings emitted while `fn` runs (they are delivered on a later tick). */
async function warningsOf(fn) {
  const seen = [];
  const listen = (w) => seen.push(w);
  process.on('warning', listen);
  try {
    await fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listen);
  }
  return seen.filter((w) => w.code === 'INTERLOCK_NO_MARKS');
}

describe('FileLock with a hostile or unusable marks region', function () {
  this.timeout(30000);
  const planted = [];
  const locks = [];
  let dir;
  beforeEach(() => {
    dir = tmpDir('interlock-marks-hostile-');
  });
  afterEach(() => {
    for (const l of locks.splice(0)) l.close();
    killChildren();
    for (const p of planted.splice(0)) fs.rmSync(p, { force: true });
  });

  /** A lock file with `plant(region)` done at its region's name first. */
  function lockWith(plant) {
    const file = path.join(dir, 'x.lock');
    fs.writeFileSync(file, '');
    const region = regionOf(file);
    planted.push(region);
    plant(region);
    const lock = new FileLock(file);
    locks.push(lock);
    return { file, region, lock };
  }

  /** Still a lock (nobody else gets it while held), with token 0n, and said once. */
  async function assertLocksWithoutMarks(file, lock, why) {
    const warnings = await warningsOf(async () => {
      const h = await lock.acquire({ timeout: 5000 });
      assert.equal(h.token, 0n);
      assert.equal(h.ownerDied, false);
      assert.equal(othersCanLock(file), false, 'still excludes other holders');
      h.release();
      assert.equal(othersCanLock(file), true);
      const again = lock.acquireSync({ shared: true, timeout: 5000 });
      assert.equal(again.token, 0n);
      assert.equal(othersCanLock(file), false, 'held shared: no exclusive holder either');
      again.release();
    });
    assert.equal(warnings.length, 1, 'one warning per lock and thread');
    assert.match(warnings[0].message, why);
    assert.match(warnings[0].message, /the lock itself is unaffected/);
  }

  it('garbage at the name → locks without marks, warns ERR_INCOMPATIBLE_REGION, leaves the file as it was', async () => {
    const garbage = Buffer.alloc(1280, 0x5a);
    const { file, region, lock } = lockWith((r) => fs.writeFileSync(r, garbage, { mode: 0o600 }));
    await assertLocksWithoutMarks(file, lock, /ERR_INCOMPATIBLE_REGION/);
    assert.deepEqual(fs.readFileSync(region), garbage);
  });

  it('another kind of region at the name (a SharedMutex) → locks without marks, says which kind', async () => {
    const { file, region, lock } = lockWith((r) => {
      new SharedMutex(path.basename(r)).close();
    });
    const before = fs.readFileSync(region);
    await assertLocksWithoutMarks(file, lock, /another kind of region, not a FileLock marks region/);
    assert.deepEqual(fs.readFileSync(region), before);
  });

  it("another user's file at the name, held exclusively by them → refused at once (no wait for their flock)", async function () {
    if (process.geteuid() !== 0) {
      console.log('      skipped: planting a file of another uid needs root');
      return this.skip(); // not root: cannot plant a file owned by another uid; printed above
    }
    const { file, region, lock } = lockWith((r) => {
      fs.writeFileSync(r, Buffer.alloc(1280), { mode: 0o666 });
      fs.chownSync(r, NOBODY, NOBODY);
    });
    // The squatter holds its flock, which a region's creator holds while it
    // initialises: an opener that waited for it would stall for seconds.
    const squatter = startTracked('flock', ['-x', region, 'sh', '-c', 'echo locked; exec sleep 60'], 'locked', {
      uid: NOBODY,
      gid: NOBODY,
    });
    await squatter.started;
    await within(
      assertLocksWithoutMarks(file, lock, /owned by uid 65534, not by this user .*another user planted it/),
      2000,
      'acquire beside a squatter',
    );
    assert.equal(fs.statSync(region).uid, NOBODY, 'left as it was');
  });

  it('a region cut under its users → the next grant has no marks, no crash, and the lock goes on', async () => {
    const file = path.join(dir, 'cut.lock');
    const lock = new FileLock(file);
    locks.push(lock);
    const first = lock.acquireSync();
    assert.ok(first.token > 0n);
    first.release();
    const region = regionOf(file);
    planted.push(region);
    fs.truncateSync(region, 0);
    const warnings = await warningsOf(async () => {
      const h = lock.acquireSync({ timeout: 5000 });
      assert.equal(h.token, 0n, 'marks read from a cut file are not trusted');
      assert.equal(othersCanLock(file), false);
      h.release();
    });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /lost pages while mapped/);
  });

  it('a full /dev/shm (ENOSPC) → FileLock still locks, without marks, and says ENOSPC', function () {
    // A private tmpfs of 16 KiB over /dev/shm, filled, in a mount namespace of
    // our own: the machine's /dev/shm is never filled.
    const file = path.join(dir, 'full.lock');
    const code = `
      const { FileLock } = require(${JSON.stringify(ROOT)});
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.code + ': ' + w.message));
      const h = new FileLock(${JSON.stringify(file)}).acquireSync();
      const other = require('node:child_process').spawnSync('flock', ['-n', ${JSON.stringify(file)}, 'true']).status;
      setImmediate(() => console.log(JSON.stringify({ token: String(h.token), ownerDied: h.ownerDied, other, warnings })));`;
    // The runtime's command line whole, as "$@": Deno rewrites `execPath -e
    // code` in any argv into its own eval command, which is longer.
    const script =
      'mount -t tmpfs -o size=16k tmpfs /dev/shm && { head -c 1048576 /dev/zero > /dev/shm/fill 2>/dev/null; exec "$@"; }';
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', process.execPath, '-e', code], {
      encoding: 'utf8',
      timeout: 20000,
    });
    if (r.status !== 0 && /unshare|mount/.test(r.stderr) && !/FileLock/.test(r.stderr)) {
      console.log(`      skipped: a private tmpfs in a mount namespace is refused here: ${r.stderr.trim()}`);
      return this.skip(); // a private tmpfs in a mount namespace is refused (no CAP_SYS_ADMIN); printed above
    }
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.token, '0');
    assert.equal(out.ownerDied, false);
    assert.equal(out.other, 1, 'another process could not take the lock: it was held');
    assert.equal(out.warnings.length, 1);
    assert.match(out.warnings[0], /^INTERLOCK_NO_MARKS: .*ENOSPC/);
  });
});
