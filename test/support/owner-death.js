'use strict';
// Capability probe for robust-mutex owner death (EOWNERDEAD after a holder
// dies). The kernel does that by walking the list each thread registers with
// set_robust_list(2); qemu-user cannot forward that list to the host kernel
// and answers ENOSYS, so under user-mode emulation a SIGKILLed holder's mutex
// stays locked forever. Tests that kill a holder ask first:
//
//   const { skipUnlessOwnerDeath } = require('./support/owner-death');
//   describe('...', function () {
//     before(async function () { await skipUnlessOwnerDeath(this); });  // whole block
//     it('...', async function () { await skipUnlessOwnerDeath(this); ... });  // or one test
//
// On a native kernel the answer is always "supported" without a probe, so a
// broken owner-death path fails its tests instead of skipping them. Only with
// evidence of emulation is a holder killed for real; if its mutex is then not
// recovered within a bound, the tests report "not applicable" with the reason.
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { evalArgs } = require('./helpers');

const ROOT = path.resolve(__dirname, '..', '..');
const UNAME = { x64: 'x86_64', arm64: 'aarch64' };
const QEMU = { x64: 'x86_64', arm64: 'aarch64' };
const HELD_WITHIN_MS = 60000; // an emulated node can take seconds to start
const RECOVER_WITHIN_MS = 2000;

/** Why we think this process runs under user-mode emulation, or null. */
function emulationEvidence() {
  const kernel = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout?.trim();
  if (kernel && UNAME[process.arch] && kernel !== UNAME[process.arch]) {
    return `${process.arch} process on a ${kernel} kernel (user-mode emulation)`;
  }
  const entry = `/proc/sys/fs/binfmt_misc/qemu-${QEMU[process.arch]}`;
  try {
    if (fs.readFileSync(entry, 'utf8').startsWith('enabled')) return `${entry} is enabled`;
  } catch {}
  return null;
}

const CHILD = `
const { SharedMutex } = require(argv[0]);
new SharedMutex(argv[1]).acquireSync();
process.stdout.write('held\\n');
setInterval(() => {}, 1000);
`;

/** Kills a child that holds `name`, then asks whether the mutex comes back with ownerDied. */
async function holderDeathRecovered(name) {
  const { SharedMutex } = require(ROOT);
  const child = spawn(process.execPath, evalArgs(CHILD, ROOT, name), { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`probe child did not hold within ${HELD_WITHIN_MS} ms`)),
        HELD_WITHIN_MS,
      );
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
      });
      child.stdout.on('data', (d) => {
        if (String(d).includes('held')) resolve(clearTimeout(timer));
      });
      child.on('exit', (code) => reject(new Error(`probe child exited (${code}): ${err}`)));
    });
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  const m = new SharedMutex(name);
  try {
    const h = m.acquireSync({ timeout: RECOVER_WITHIN_MS });
    const died = h.ownerDied;
    h.release();
    return died;
  } catch (err) {
    if (err.code === 'ETIMEDOUT') return false;
    throw err;
  } finally {
    m.close();
    SharedMutex.unlink(name);
  }
}

let cached;

/** { supported, reason }: whether a dead holder's SharedMutex is handed on with ownerDied. */
function ownerDeathSupport() {
  cached ??= (async () => {
    const evidence = emulationEvidence();
    if (evidence === null) return { supported: true, reason: 'native kernel' };
    const name = `ilt-probe-${process.pid}-${Date.now()}`;
    if (await holderDeathRecovered(name)) return { supported: true, reason: `${evidence}, yet owner death works` };
    return {
      supported: false,
      reason:
        `${evidence}: robust futexes are unavailable (qemu-user answers set_robust_list with ENOSYS), ` +
        `so a SIGKILLed holder's mutex is never recovered (probe: not within ${RECOVER_WITHIN_MS} ms)`,
    };
  })();
  return cached;
}

/** Skips the calling mocha test or hook, saying why, when owner death cannot work here. */
async function skipUnlessOwnerDeath(ctx) {
  ctx.timeout(Math.max(ctx.timeout(), HELD_WITHIN_MS + RECOVER_WITHIN_MS + 30000));
  const { supported, reason } = await ownerDeathSupport();
  if (supported) return;
  console.log(`      not applicable: ${reason}`);
  ctx.skip(); // the reason is printed just above: this kernel or emulator cannot report owner death
}

module.exports = { ownerDeathSupport, skipUnlessOwnerDeath, emulationEvidence, holderDeathRecovered };
