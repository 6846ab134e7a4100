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

describe("Web Locks conformance file against Node 24's built-in navigator.locks", function () {
  this.timeout(60000);

  it('passes (or skips, saying why) every test there', function () {
    const exe = node24();
    if (exe === undefined) {
      console.log('      skipped: Node 24 is not installed; `bash scripts/runtimes.sh install node24` (CI does)');
      this.skip();
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
});
