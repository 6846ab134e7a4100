'use strict';
// At load the addon probes whether a timer tick interrupts a blocked call on
// this machine; where it does not (qemu-user) waits poll with LOCK_NB instead
// of blocking in flock(2). On a loaded CPU the probe's sleep could end late,
// after the tick, and a healthy Linux was taken for qemu: every wait of that
// process then polled (not queued in the kernel, a wake-up per millisecond).
// Here each process loads the addon while busy loops keep every core busy,
// and its wait must show in /proc/locks as a blocked waiter ("->").
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { tmpDir, holdFlock, sleep, waitFor, startTracked, killChildren, skipBecause } = require('./support/helpers');
const { emulationEvidence } = require('./support/owner-death');

const ROOT = path.resolve(__dirname, '..');
const WAITER = `
const { FileLock } = require(process.argv[2]);
new FileLock(process.argv[3]).acquire().then((h) => h.release());
process.stdout.write('waiting\\n');
`;

/** pids blocked in flock(2) on `file`, from /proc/locks. */
function blockedOn(file) {
  const ino = `:${fs.statSync(file).ino} `;
  return fs
    .readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => /^\d+:\s+->\s+FLOCK/.test(l) && l.includes(ino))
    .map((l) => Number(l.trim().split(/\s+/)[5]));
}

describe('interrupt probe under CPU load', function () {
  this.timeout(60000);
  const hogs = [];
  afterEach(() => {
    for (const h of hogs.splice(0)) h.kill('SIGKILL');
    killChildren();
  });

  it('waits of processes started on a busy machine block in flock(2), not poll', async function () {
    const emulated = emulationEvidence();
    // Under qemu-user the waits poll instead; the reason is printed.
    if (emulated) skipBecause(this, `ticks do not interrupt waits under emulation (${emulated}): waits poll there`);
    const dir = tmpDir();
    const file = path.join(dir, 'probe.lock');
    // A file rather than -e: Deno evaluates -e code as an ES module.
    const waiter = path.join(dir, 'waiter.cjs');
    fs.writeFileSync(waiter, WAITER);
    const holder = await holdFlock(file);
    try {
      for (let i = 0; i < 6 * os.availableParallelism(); i++) {
        hogs.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
      }
      await sleep(500); // the loops running before any waiter loads the addon
      // Started together, so that they load (and probe) while competing.
      const started = [];
      for (let i = 0; i < 8; i++) started.push(startTracked(process.execPath, [waiter, ROOT, file], 'waiting'));
      const waiters = (await Promise.all(started.map((w) => w.started))).map((child) => child.pid);
      // Seen blocked at least once, not all at one instant: while a handoff
      // turn is pending (the holder here never releases, so the longest
      // waiter takes one) the others leave flock every 100 ms to recheck it,
      // and on a loaded CPU one may be between two flock calls at any given
      // sample. A process that polls with LOCK_NB is never listed at all.
      const seen = new Set();
      const all = () => {
        for (const pid of blockedOn(file)) seen.add(pid);
        return waiters.every((pid) => seen.has(pid));
      };
      const never = () => waiters.filter((pid) => !seen.has(pid));
      assert.ok(await waitFor(all, 10000), `never seen blocked in flock: ${never()}; waiters: ${waiters}`);
    } finally {
      await holder.release();
    }
  });
});
