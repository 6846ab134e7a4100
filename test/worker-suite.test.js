'use strict';
// The whole suite once more, inside a worker_threads Worker: every lock kind
// must work off the main thread, and the worker must exit on its own (no
// leaked handle, native thread or wait keeps it alive).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { FIXTURES } = require('./support/helpers');

// Files that cannot run inside a Worker, each with the reason.
// Files whose code under test all runs in child processes: inside a Worker
// they would test nothing new and double their (long) runtime.
const EXCLUDED = new Map([
  ['worker-suite.test.js', 'runs the suite itself'],
  ['counter-server.test.js', 'drives a server in child processes only'],
  ['cli.test.js', 'drives the CLI in child processes only'],
  ['exit-midflight.test.js', 'each case is a child process'],
  ['package.test.js', 'inspects npm pack output only'],
]);

const EXIT_GRACE_MS = 5000; // after the last test, the worker's loop must drain by then

describe('the suite inside a Worker', () => {
  it('passes with 0 failures and the worker exits on its own', async function () {
    this.timeout(240000);
    const files = fs
      .readdirSync(__dirname)
      .filter((f) => f.endsWith('.test.js') && !EXCLUDED.has(f))
      .sort()
      .map((f) => path.join(__dirname, f));
    assert.ok(files.length > 0);
    const worker = new Worker(path.join(FIXTURES, 'suite-worker.js'), { workerData: { files } });
    let result;
    let terminated = false;
    let timer;
    const exitCode = await new Promise((resolve, reject) => {
      worker.on('message', (m) => {
        result = m;
        timer = setTimeout(() => {
          terminated = true;
          worker.terminate();
        }, EXIT_GRACE_MS);
      });
      worker.on('error', reject);
      worker.on('exit', resolve);
    });
    clearTimeout(timer);
    assert.ok(result, `the worker reported a result (exit code ${exitCode})`);
    const details = result.failed.map((f) => `${f.title}\n${f.error}`).join('\n\n');
    assert.equal(result.failures, 0, `${result.failures} failures inside the worker:\n${details}`);
    assert.ok(result.passed > 0, 'tests ran');
    assert.equal(terminated, false, `the worker did not exit within ${EXIT_GRACE_MS} ms of its last test`);
    assert.equal(exitCode, 0);
  });
});
