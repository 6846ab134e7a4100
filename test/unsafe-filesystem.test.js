'use strict';
// Lock files on filesystems where flock(2) may not exclude (issue 10, item
// 19): refused with ERR_UNSAFE_FILESYSTEM unless allowUnsafeFilesystem. Once
// for real on a FUSE mount (bindfs, in a private mount namespace the test
// makes), and for the other types through the f_type the binding's
// LockFile.setFsTypeForTesting makes every later open see (not in the package
// API: tests reach it through dist/native).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile, spawnSync } = require('node:child_process');
const { FileLock } = require('..');
const { native } = require('../dist/native');
const { tmpDir, othersCanLock, runtimeScript, FIXTURES } = require('./support/helpers');

const MAGIC = { nfs: 0x6969, cifs: 0xff534d42, smb2: 0xfe534d42, fuse: 0x65735546, '9p': 0x01021997, ceph: 0x00c36400 };

describe('lock files on unsafe filesystems', () => {
  let dir;
  before(() => {
    dir = tmpDir();
  });

  describe('through an injected f_type', () => {
    afterEach(() => native.LockFile.setFsTypeForTesting(0));

    for (const [name, type] of Object.entries(MAGIC)) {
      it(`${name}: every API refuses with ERR_UNSAFE_FILESYSTEM naming ${name} and the path`, async () => {
        const file = path.join(dir, `${name}.lock`);
        native.LockFile.setFsTypeForTesting(type);
        const expected = { name: 'LockError', code: 'ERR_UNSAFE_FILESYSTEM', syscall: 'fstatfs', path: file };
        const lock = new FileLock(file);
        const message = new RegExp(`on ${name} \\(f_type 0x${type.toString(16)}\\) '${file}'.*allowUnsafeFilesystem`);
        assert.throws(() => lock.tryAcquire(), { ...expected, message });
        assert.throws(() => lock.acquireSync({ timeout: 100 }), expected);
        await assert.rejects(lock.acquire(), expected);
        lock.close();
      });
    }

    it('allowUnsafeFilesystem: true locks there as anywhere', () => {
      const file = path.join(dir, 'allowed.lock');
      native.LockFile.setFsTypeForTesting(MAGIC.nfs);
      const lock = new FileLock(file, { allowUnsafeFilesystem: true });
      const h = lock.acquireSync();
      assert.equal(othersCanLock(file), false);
      h.release();
      lock.close();
    });

    it('local filesystems (tmpfs, ext4, xfs, btrfs, overlayfs) are not refused', () => {
      for (const type of [0x01021994, 0xef53, 0x58465342, 0x9123683e, 0x794c7630]) {
        native.LockFile.setFsTypeForTesting(type);
        const lock = new FileLock(path.join(dir, `local-${type}.lock`));
        lock.acquireSync().release();
        lock.close();
      }
    });

    it('allowUnsafeFilesystem must be a boolean', () => {
      assert.throws(() => new FileLock(path.join(dir, 'x.lock'), { allowUnsafeFilesystem: 1 }), {
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_TYPE',
      });
    });
  });

  it('for real: a lock file on a FUSE mount (bindfs) is refused, and taken with allowUnsafeFilesystem', async function () {
    const why = fuseUnavailable();
    if (why !== null) {
      console.log(`      skipped: ${why}`);
      this.skip(); // no FUSE here (no /dev/fuse, bindfs or permission to mount); printed above
    }
    const file = path.join(dir, 'fuse-mnt', 'x.lock');
    const stdout = await onFuse(dir, 'fuse', [process.execPath, path.join(FIXTURES, 'unsafe-fs.js'), file]);
    const out = JSON.parse(stdout);
    assert.deepEqual(
      { ...out.refused, message: undefined },
      { code: 'ERR_UNSAFE_FILESYSTEM', syscall: 'fstatfs', path: file, filesystem: 'fuse', message: undefined },
      JSON.stringify(out),
    );
    assert.match(out.refused.message, /fuse \(f_type 0x65735546\)/);
    assert.equal(out.allowed, true, JSON.stringify(out));
  });

  it('for real: the CLI refuses a lock file on a FUSE mount (exit 69), and takes it with --allow-unsafe-filesystem', async function () {
    const why = fuseUnavailable();
    if (why !== null) {
      console.log(`      skipped: ${why}`);
      this.skip(); // no FUSE here (no /dev/fuse, bindfs or permission to mount); printed above
    }
    const file = path.join(dir, 'cli-mnt', 'x.lock');
    const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
    const script =
      'for flag in "" --allow-unsafe-filesystem; do "$0" "$1" $flag "$2" echo ran 2>&1; echo "rc=$?"; done';
    const out = await onFuse(dir, 'cli', ['sh', '-c', script, runtimeScript(dir), cli, file]);
    // Refused before the command runs; with the flag, locked and run.
    const refusal =
      /^interlock: ERR_UNSAFE_FILESYSTEM: .* fuse \(f_type 0x65735546\) '[^']*x\.lock'.*--allow-unsafe-filesystem\n/;
    assert.match(out, new RegExp(`${refusal.source}rc=69\nran\nrc=0\n$`), out);
  });
});

/**
 * Runs argv with a bindfs (FUSE) mount of a fresh `<name>-src` at `<name>-mnt` in
 * `dir`: bindfs in the foreground, in a mount namespace of its own, so nothing
 * is left mounted on the host and the shell reaps it after unmounting.
 */
function onFuse(dir, name, argv) {
  const src = path.join(dir, `${name}-src`);
  const mnt = path.join(dir, `${name}-mnt`);
  fs.mkdirSync(src);
  fs.mkdirSync(mnt);
  const script = `
    bindfs -f "$1" "$2" & fuse=$!
    i=0; until mountpoint -q "$2"; do i=$((i+1)); [ $i -gt 100 ] && { kill $fuse; echo "bindfs did not mount" >&2; exit 3; }; sleep 0.05; done
    [ "$(stat -f -c %t "$2")" = 65735546 ] || { umount "$2"; wait $fuse; echo "not a FUSE mount" >&2; exit 4; }
    mnt=$2; shift 2; "$@"; rc=$?
    umount "$mnt"; wait $fuse
    exit $rc`;
  const args = ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', src, mnt, ...argv];
  return new Promise((resolve, reject) =>
    execFile('unshare', args, { timeout: 20000 }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
}

/** Why a FUSE mount cannot be made here, or null. */
function fuseUnavailable() {
  if (process.getuid() !== 0) return 'mounting bindfs in a private mount namespace needs root';
  if (spawnSync('sh', ['-c', 'command -v bindfs && command -v unshare']).status !== 0) {
    return 'bindfs or unshare is not installed (.ci/run installs bindfs)';
  }
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse on this machine';
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'true']);
  if (probe.status !== 0) return `the kernel refuses a private mount namespace: ${probe.stderr}`;
  return null;
}
