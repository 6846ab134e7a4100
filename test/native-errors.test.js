'use strict';
// One error road (issue 11): the binding reports a failure in one shape for
// sync and async calls alike, an Error with `errno` (a real, negative errno)
// for a system error or `kind` for one of interlock's own (an incompatible
// region, an unsafe filesystem …), and `syscall`; lib/errors.ts words it.
// These reach the binding through dist/native, as unsafe-filesystem.test.js
// does, because the shape is the contract between the two layers.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { native } = require('../dist/native');
const { SharedMutex } = require('..');
const { tmpDir } = require('./support/helpers');
const { uniqueName, cleanupNames } = require('./fixtures/mutex-driver');

const NFS = 0x6969;
const realErrnos = new Set(Object.values(os.constants.errno).map((e) => -e));

// The async twin of a sync call: (error or null, grant), once.
function lockAsync(file, shared = false) {
  return new Promise((resolve) => {
    file.lockAsync(shared, (error, grant) => resolve({ error, grant }));
  });
}

function thrownBy(fn) {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail('did not throw');
}

// The fields JS reads, so a sync throw and an async report can be compared.
const shape = (e) => ({ errno: e.errno, kind: e.kind, syscall: e.syscall });

describe('native errors: one shape for sync and async calls', () => {
  let dir;
  before(() => {
    dir = tmpDir();
  });
  afterEach(() => {
    native.LockFile.setFsTypeForTesting(0);
    cleanupNames();
  });

  it('an interlock failure says its kind, with no errno: the same sync and async', async () => {
    native.LockFile.setFsTypeForTesting(NFS);
    const sync = new native.LockFile(path.join(dir, 'nfs-sync.lock'), 0o600, true, false);
    const thrown = thrownBy(() => sync.open());
    assert.deepEqual(shape(thrown), { errno: undefined, kind: 'unsafeFilesystem', syscall: 'fstatfs' });
    const async = new native.LockFile(path.join(dir, 'nfs-async.lock'), 0o600, true, false);
    const { error, grant } = await lockAsync(async);
    assert.ok(error instanceof Error, 'the callback gets an Error, as the sync call throws');
    assert.deepEqual(shape(error), shape(thrown));
    assert.equal(grant, undefined);
    sync.close();
    async.close();
  });

  it('a system error carries its real errno and syscall, no kind: the same sync and async', async () => {
    const missing = path.join(dir, 'no-such-dir', 'x.lock');
    const thrown = thrownBy(() => new native.LockFile(missing, 0o600, true, false).open());
    assert.deepEqual(shape(thrown), { errno: -os.constants.errno.ENOENT, kind: undefined, syscall: 'open' });
    const { error } = await lockAsync(new native.LockFile(missing, 0o600, true, false));
    assert.deepEqual(shape(error), shape(thrown));
  });

  it('a grant calls back with a null error', async () => {
    const file = new native.LockFile(path.join(dir, 'free.lock'), 0o600, true, false);
    const { error } = await lockAsync(file);
    assert.equal(error, null);
    file.close();
  });

  it('a refused region says kind "incompatible", never a private code in errno', () => {
    const name = uniqueName('garbage');
    fs.writeFileSync(`/dev/shm/${name}`, Buffer.alloc(8192, 0x5a), { mode: 0o600 });
    assert.throws(
      () => new native.SharedMutex(name, 8, 0o600, false),
      (e) => e.kind === 'incompatible' && e.syscall === 'open' && e.errno === undefined,
    );
    // …which the facade words as before.
    assert.throws(() => new SharedMutex(name, { dataSize: 8 }), { code: 'ERR_INCOMPATIBLE_REGION' });
  });

  it('every errno the binding reports is a real one', async () => {
    const name = uniqueName('garbage');
    fs.writeFileSync(`/dev/shm/${name}`, Buffer.alloc(64, 1), { mode: 0o600 });
    const errors = [
      thrownBy(() => new native.LockFile(path.join(dir, 'nope', 'a'), 0o600, true, false).open()),
      thrownBy(() => native.flockSync(-1, native.LOCK_EX, -1)),
      thrownBy(() => new native.SharedMutex(name, 8, 0o600, false)),
    ];
    native.LockFile.setFsTypeForTesting(NFS);
    errors.push(thrownBy(() => new native.LockFile(path.join(dir, 'nfs.lock'), 0o600, true, false).open()));
    errors.push((await lockAsync(new native.LockFile(path.join(dir, 'nfs2.lock'), 0o600, true, false))).error);
    assert.equal(errors.length, 5);
    for (const e of errors) {
      if (e.errno !== undefined) assert.ok(realErrnos.has(e.errno), `errno ${e.errno} (${e.syscall}) is real`);
      assert.ok((e.errno === undefined) !== (e.kind === undefined), `errno or kind, not both: ${e.message}`);
    }
  });
});
