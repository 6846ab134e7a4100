'use strict';
// Teardown and hygiene: dead holders (killed processes, terminated or exiting
// workers) free the lock at once; waits die with their worker; children never
// inherit a lock; symlinks are refused; unlinking the lock file never lets
// two holders overlap.
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { FileLock } = require('..');
const {
  tmpDir,
  sleep,
  waitFor,
  threadCount,
  settledThreadCount,
  openFiles,
  filesOpenedSince,
  startTracked,
  startFixture,
  killChildren,
  FIXTURES,
  within,
  unlinkSemaphores,
} = require('./support/helpers');
const { uniqueName, cleanupNames } = require('./fixtures/mutex-driver');

/** Exit status of `flock -n file true`: 0 another process got it, 1 busy. */
const flockN = (file) => spawnSync('flock', ['-n', file, 'true']).status;

/** A lock-worker.js fixture; `next(msg)` resolves when it posts `msg`. */
function startWorker(file, action) {
  const worker = new Worker(path.join(FIXTURES, 'lock-worker.js'), { workerData: { path: file, action } });
  const seen = [];
  const waiters = [];
  worker.on('message', (m) => {
    seen.push(m);
    for (const w of waiters.filter((x) => x.msg === m)) w.resolve();
  });
  const exited = new Promise((resolve, reject) => {
    worker.on('exit', resolve);
    worker.on('error', reject);
  });
  const next = (msg) =>
    seen.includes(msg) ? Promise.resolve() : new Promise((resolve) => waiters.push({ msg, resolve }));
  return { worker, seen, exited, next };
}

/** fds of process `pid` that point at `file`. */
function fdsOfPidOn(pid, file) {
  const target = fs.realpathSync(file);
  return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
    } catch {
      return false;
    }
  }).length;
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('teardown: dead holders and waiters', function () {
  this.timeout(10000);
  let dir;
  before(() => {
    dir = tmpDir('interlock-teardown-');
  });
  afterEach(killChildren);

  for (const flags of [[], ['--worker']]) {
    const who = flags.length ? 'a worker of a process' : 'a process';
    it(`${who} holding the lock, killed with SIGKILL: our pending acquire gets it at once`, async () => {
      const file = path.join(dir, `sigkill${flags.join('')}.lock`);
      const { child, started } = startFixture('hold.js', [file, ...flags], 'held');
      await started;
      const lock = new FileLock(file);
      assert.equal(lock.tryAcquire(), null, 'the holder has it');
      const waiting = lock.acquire();
      await sleep(20); // let our wait block in flock(2)
      child.kill('SIGKILL');
      const h = await within(waiting, 2000, 'grant after SIGKILL');
      h.release();
      lock.close();
    });
  }

  for (const action of ['hold', 'hold-sync']) {
    it(`a worker holding the lock (${action}) is terminated: this thread and other processes can take it`, async () => {
      const file = path.join(dir, `terminate-${action}.lock`);
      const lock = new FileLock(file);
      let w = startWorker(file, action);
      await w.next('held');
      assert.equal(lock.tryAcquire(), null, 'the worker has it');
      assert.equal(flockN(file), 1, 'the worker has it');
      const waiting = lock.acquire();
      await sleep(20);
      await w.worker.terminate();
      const h = await within(waiting, 2000, 'grant after terminate');
      h.release();

      w = startWorker(file, action);
      await w.next('held');
      assert.equal(flockN(file), 1);
      await w.worker.terminate();
      // Deno's terminate() resolves before the worker has stopped; the addon
      // releases the lock when it really ends.
      const free = () => flockN(file) === 0;
      assert.ok(process.versions.deno ? await waitFor(free, 5000) : free(), 'another process takes it after terminate');
      lock.close();
    });
  }

  it('a worker terminated while its acquires wait: no hang, no crash, the lock stays usable', async () => {
    const file = path.join(dir, 'terminate-waiting.lock');
    const lock = new FileLock(file);
    const base = await settledThreadCount();
    const h = lock.acquireSync();
    const w = startWorker(file, 'wait');
    await w.next('waiting');
    await sleep(30); // the worker's head request now blocks in flock(2)
    await within(w.worker.terminate(), 2000, 'terminate of a waiting worker');
    assert.deepEqual(w.seen, ['waiting']);
    assert.equal(flockN(file), 1, 'we still hold it');
    h.release();
    // On Deno the worker may not have stopped yet (terminate() resolves
    // first): its waiter can take the lock, and the cleanup hook frees it.
    const free = () => flockN(file) === 0;
    assert.ok(process.versions.deno ? await waitFor(free, 5000) : free(), 'no dead waiter took it');
    lock.tryAcquire().release();
    assert.ok(await waitFor(() => threadCount() <= base, 3000), `threads ${threadCount()} > baseline ${base}`);
    lock.close();
  });

  it('workers terminated as the lock is released to their pending acquires: no crash, no leaked grant', async () => {
    // In a child process: a crash in worker teardown must fail this test, not kill mocha.
    const file = path.join(dir, 'terminate-race.lock');
    const { started, exited } = startFixture('terminate-race.js', [file, '9']);
    await started;
    const r = await exited;
    assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.err.slice(0, 600)}`);
    assert.equal(r.code, 0, r.err.slice(0, 600));
    assert.equal(r.out, 'ok 9\n');
  });

  for (const action of ['exit-holding', 'end-holding']) {
    it(`a worker that exits while holding (${action}) frees the lock`, async () => {
      const file = path.join(dir, `${action}.lock`);
      const w = startWorker(file, action);
      assert.equal(await within(w.exited, 3000, 'worker exit'), 0);
      assert.deepEqual(w.seen, ['held']);
      assert.equal(flockN(file), 0);
      const lock = new FileLock(file);
      lock.tryAcquire().release();
      lock.close();
    });
  }
});

/** Everything `child` prints on stdout, as it arrives. */
function stdoutOf(child) {
  const buf = { text: '' };
  child.stdout.on('data', (d) => {
    buf.text += d;
  });
  return buf;
}

/** Pids of the children of `pid`, from /proc. */
const childrenOf = (pid) =>
  fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

describe('hygiene: children never inherit the lock', function () {
  this.timeout(10000);
  let dir;
  before(() => {
    dir = tmpDir('interlock-cloexec-');
  });
  afterEach(killChildren);

  it('a child spawned while we hold the lock has no fd on the lock file', async () => {
    const file = path.join(dir, 'self.lock');
    const lock = new FileLock(file);
    const h = lock.acquireSync();
    const { child, started } = startTracked('sh', ['-c', 'echo up; exec sleep 30'], 'up');
    await started;
    assert.equal(fdsOfPidOn(child.pid, file), 0, 'the child inherited our lock fd');
    h.release();
    lock.close();
    assert.equal(flockN(file), 0);
    assert.ok(alive(child.pid));
  });

  it('a holder killed while its child lives: the lock frees, the child keeps nothing', async () => {
    const file = path.join(dir, 'killed-parent.lock');
    const { child, started, exited } = startFixture('hold.js', [file, '--spawn'], 'held');
    const out = stdoutOf(child);
    await started;
    const { childPid } = JSON.parse(/held (.*)/.exec(out.text)[1]);
    assert.equal(flockN(file), 1, 'the holder has it');
    assert.equal(fdsOfPidOn(childPid, file), 0, 'the grandchild inherited the lock fd');
    child.kill('SIGKILL');
    await exited;
    assert.ok(alive(childPid), 'the grandchild outlives the holder');
    assert.equal(flockN(file), 0, 'the lock died with its holder');
    const lock = new FileLock(file);
    lock.tryAcquire().release();
    lock.close();
  });

  it('control: a command run by flock(1) inherits its fd and keeps the lock after flock(1) dies', async () => {
    const file = path.join(dir, 'control.lock');
    const { child, started, exited } = startTracked(
      'flock',
      [file, 'sh', '-c', 'echo locked; exec sleep 30'],
      'locked',
    );
    await started;
    const [sleeper] = childrenOf(child.pid);
    assert.equal(fdsOfPidOn(sleeper, file), 1, 'detector: the inherited fd is visible');
    child.kill('SIGKILL');
    await exited;
    assert.equal(flockN(file), 1, 'detector: an inherited fd keeps the lock');
    process.kill(sleeper, 'SIGKILL');
    assert.ok(await waitFor(() => flockN(file) === 0, 2000));
  });
});

describe('hygiene: symlinks are refused', () => {
  let dir;
  before(() => {
    dir = tmpDir('interlock-symlink-');
  });

  it('a symlinked lock path fails with ELOOP (path, syscall open) and locks nothing', async () => {
    const target = path.join(dir, 'target.lock');
    const link = path.join(dir, 'link.lock');
    fs.writeFileSync(target, '');
    fs.symlinkSync(target, link);
    const before = openFiles();
    const expected = {
      name: 'LockError',
      code: 'ELOOP',
      errno: -os.constants.errno.ELOOP,
      syscall: 'open',
      path: link,
    };
    const lock = new FileLock(link);
    assert.throws(() => lock.tryAcquire(), expected);
    assert.throws(() => lock.acquireSync(), expected);
    await assert.rejects(lock.acquire(), expected);
    await assert.rejects(
      lock.run(() => assert.fail('ran')),
      expected,
    );
    lock.close();
    assert.deepEqual(filesOpenedSince(before), [], 'an fd leaked');
    assert.equal(flockN(target), 0, 'the target was locked through the link');
    const direct = new FileLock(target);
    direct.tryAcquire().release(); // control: the target itself is fine
    direct.close();
  });

  it('a dangling symlink fails with ELOOP and creates nothing at its target', async () => {
    const target = path.join(dir, 'missing.lock');
    const link = path.join(dir, 'dangling.lock');
    fs.symlinkSync(target, link);
    const lock = new FileLock(link);
    await assert.rejects(lock.acquire(), { code: 'ELOOP', syscall: 'open', path: link });
    lock.close();
    assert.equal(fs.existsSync(target), false, 'O_CREAT followed the link');
  });
});

/** Replays an O_APPEND journal of `+id`/`-id` lines; counts overlaps. */
function overlaps(journal) {
  const lines = fs.readFileSync(journal, 'utf8').split('\n').filter(Boolean);
  let depth = 0;
  let bad = 0;
  for (const line of lines) {
    depth += line[0] === '+' ? 1 : -1;
    if (depth > 1) bad++;
  }
  return { bad, entries: lines.length / 2 };
}

describe('hygiene: unlinking the lock file never yields two holders', function () {
  this.timeout(15000);
  let dir;
  before(() => {
    dir = tmpDir('interlock-unlink-');
  });
  afterEach(killChildren);

  /** Runs unlink-race.js processes, one per mode, from one start line. */
  async function race(name, modes, iterations, tasks) {
    const file = path.join(dir, `${name}.lock`);
    const journal = path.join(dir, `${name}.journal`);
    const kids = modes.map((m) =>
      startFixture('unlink-race.js', [file, journal, m, String(iterations), String(tasks)], 'ready'),
    );
    await Promise.all(kids.map((k) => k.started));
    for (const k of kids) k.child.stdin.write('go\n');
    for (const r of await Promise.all(kids.map((k) => k.exited))) {
      assert.equal(r.code, 0, `unlink-race fixture failed: ${r.err}`);
    }
    return overlaps(journal);
  }

  it('FileLock holders (async, 2 tasks each, and sync; kept open or opened per entry) that unlink never overlap', async () => {
    const iterations = 30;
    const { bad, entries } = await race('filelock', ['async', 'async-fresh', 'sync', 'sync-fresh'], iterations, 2);
    assert.equal(entries, iterations * (2 + 2 + 1 + 1));
    assert.equal(bad, 0, `${bad} overlapping entries`);
  });

  it('control: naive open+flock per entry, same unlinking, overlaps (the detector works, the race is real)', async () => {
    const { bad } = await race('naive', ['naive', 'naive', 'naive', 'naive'], 30, 1);
    assert.ok(bad > 0, 'no overlap seen without the inode check');
  });
});

describe('teardown: the addon loaded by worker threads only (a worker pool)', function () {
  // Node unloads the addon with the last environment that loaded it; wait
  // threads lingering for reuse then ran unmapped code (SIGSEGV, nearly every
  // async run before the shared object was marked NODELETE). Each run is a
  // process of its own: two pools of four contending workers, each pool
  // followed by 500 ms (2.5 times the threads' 200 ms linger).
  this.timeout(60000);
  let dir;
  before(() => {
    dir = tmpDir('interlock-pool-');
    fs.writeFileSync(path.join(dir, 'fd.lock'), '');
  });
  const sems = [];
  after(() => {
    unlinkSemaphores(sems);
    cleanupNames();
  });

  const runs = [];
  for (const kind of ['file', 'mutex', 'sem', 'fd']) {
    for (const mode of ['async', 'sync']) for (const end of ['exit', 'terminate']) runs.push([kind, mode, end]);
  }

  it(`FileLock, SharedMutex, Semaphore and flock(fd), async and sync, natural exit and terminate(): the process survives (${runs.length} runs)`, async () => {
    const target = ([kind, mode, end]) => {
      if (kind === 'fd') return path.join(dir, 'fd.lock');
      if (kind === 'file') return path.join(dir, `${mode}-${end}.lock`);
      const name = uniqueName(`pool-${kind}-${mode}-${end}`);
      if (kind === 'sem') sems.push(name);
      return name;
    };
    const failed = [];
    // Eight at a time: quick on an idle machine, and a loaded one only delays.
    for (let i = 0; i < runs.length; i += 8) {
      const batch = runs.slice(i, i + 8);
      const results = await Promise.all(
        batch.map((run) => startFixture('worker-pool-exit.js', [...run, target(run)]).closed),
      );
      results.forEach((r, j) => {
        if (r.signal !== null || r.code !== 0 || r.out !== 'ok\n') {
          failed.push(`${batch[j].join(' ')}: ${r.signal ?? `exit ${r.code}`} ${r.err.slice(0, 300)}`);
        }
      });
    }
    assert.deepEqual(failed, [], 'runs that did not survive');
  });
});

describe('teardown: a worker that ends without close()', function () {
  // Its cleanup hook unmaps the region and closes the fd itself: Deno never
  // ran the finalizers that did it (the region stayed mapped, its fd open, for
  // the life of the process).
  this.timeout(60000);
  const sems = [];
  after(() => {
    unlinkSemaphores(sems);
    cleanupNames();
  });

  /** Runs worker-no-close.js for `kind` under `runtime` (argv before the script). */
  async function noClose(runtime, kind) {
    const name = uniqueName(`no-close-${kind}`);
    if (kind === 'sem') sems.push(name);
    const script = path.join(FIXTURES, 'worker-no-close.js');
    const { closed } = startTracked(runtime[0], [...runtime.slice(1), script, kind, name]);
    const r = await closed;
    assert.equal(r.code, 0, `${runtime[0]}: ${r.err.slice(0, 600)}`);
    return JSON.parse(r.out.trim().split('\n').pop());
  }

  for (const [kind, what] of [
    ['mutex', 'SharedMutex'],
    ['sem', 'Semaphore'],
  ]) {
    it(`${what}: leaves no mapping and no fd of the region, and the next holder hears ownerDied`, async () => {
      assert.deepEqual(await noClose([process.execPath], kind), { maps: 0, fds: 0, ownerDied: true });
    });

    it(`${what}: the same under Deno`, async function () {
      const deno = spawnSync('bash', [path.join(__dirname, '..', 'scripts', 'runtimes.sh'), 'path', 'deno'], {
        encoding: 'utf8',
      });
      if (deno.status !== 0) {
        console.log('      skipped: Deno is not installed (bash scripts/runtimes.sh install deno)');
        this.skip(); // Deno is not installed (scripts/runtimes.sh install deno); printed above
      }
      assert.deepEqual(await noClose([deno.stdout.trim(), 'run', '-A'], kind), { maps: 0, fds: 0, ownerDied: true });
    });
  }
});
