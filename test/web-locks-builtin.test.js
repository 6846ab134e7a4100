'use strict';
// Runs web-locks.test.js against Node 24's own navigator.locks (installed by
// scripts/runtimes.sh into .cache/runtimes), so the conformance tests are a
// reading of the specification that an independent implementation passes,
// not a description of ours. In-process behaviour only: the built-in cannot
// see other processes.
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');

function node24() {
  const r = spawnSync('bash', [path.join(root, 'scripts/runtimes.sh'), 'path', 'node24'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

describe("Web Locks beside Node 24's built-in navigator.locks", function () {
  this.timeout(60000);

  it('passes (or skips, saying why) every test there', function () {
    const exe = node24();
    if (exe === undefined) {
      console.log('      skipped: Node 24 is not installed; `bash scripts/runtimes.sh install node24` (CI does)');
      this.skip(); // Node 24 is not installed (scripts/runtimes.sh install node24; CI installs it); printed above
    }
    const mocha = path.join(root, 'node_modules/mocha/bin/mocha.js');
    const r = spawnSync(exe, [mocha, '--no-config', '--reporter', 'dot', path.join(__dirname, 'web-locks.test.js')], {
      cwd: root,
      env: { ...process.env, WEB_LOCKS_IMPL: 'builtin' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `the conformance file failed on Node 24's built-in:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /[1-9]\d* passing/);
  });

  // In child processes, so this process's globals stay as they are.
  const probe = `
    const before = globalThis.navigator?.locks;
    const w = require('interlock/web-locks');
    const { locks } = require('interlock');
    navigator.locks.request('probe', (l) => l.name).then((name) => console.log(JSON.stringify({
      installed: navigator.locks === locks, builtin: w.builtinLocks === before && before !== undefined, name,
    })));`;
  function runProbe(exe) {
    const r = spawnSync(exe, ['-e', probe], { cwd: root, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  }

  it("require('interlock/web-locks') installs the manager as navigator.locks (Node 20: no built-in)", () => {
    // Node 22 and later have a built-in navigator.locks, which builtinLocks keeps.
    const fresh = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(globalThis.navigator?.locks !== undefined))',
    ]);
    const builtin = String(fresh.stdout) === 'true';
    assert.deepEqual(runProbe(process.execPath), { installed: true, builtin, name: 'probe' });
  });

  it('on Node 24 it shadows the built-in navigator.locks, which stays reachable as builtinLocks', function () {
    const exe = node24();
    if (exe === undefined) {
      console.log('      skipped: Node 24 is not installed; `bash scripts/runtimes.sh install node24` (CI does)');
      this.skip(); // Node 24 is not installed (scripts/runtimes.sh install node24; CI installs it); printed above
    }
    assert.deepEqual(runProbe(exe), { installed: true, builtin: true, name: 'probe' });
  });
});
