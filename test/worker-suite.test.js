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
  ['server-scripts.test.js', 'drives shell scripts in child processes only'],
]);

const EXIT_GRACE_MS = 5000; // after the last test, the worker's loop must drain by then
// No bound on the whole rerun: it lasts as long as its tests together, which
// differs by runtime and load (Deno 2.9 starts a Worker inside a Worker in
// ~0.5 s, Node in ~30 ms). Each test and hook must instead end within its own
// timeout plus STALL_GRACE_MS: mocha times it out inside the worker first,
// unless the worker's thread is blocked, which only this watchdog sees.
const STALL_GRACE_MS = 30000;
const DEFAULT_TIMEOUT_MS = 30000; // suite-worker.js's, for runnables without their own
const LOAD_MS = 60000; // requiring every test file, before the first hook

describe('the suite inside a Worker', () => {
  it('passes with 0 failures and the worker exits on its own', async function () {
    this.timeout(0); // bounded by the watchdog below, test by test
    const files = fs
      .readdirSync(__dirname)
      .filter((f) => f.endsWith('.test.js') && !EXCLUDED.has(f))
      .sort()
      .map((f) => path.join(__dirname, f));
    assert.ok(files.length > 0);
    const worker = new Worker(path.join(FIXTURES, 'suite-worker.js'), { workerData: { files } });
    const failed = [];
    let result;
    let running = 'loading the test files';
    let terminated = false;
    let watchdog;
    let exitTimer;
    let exitCode;
    try {
      exitCode = await new Promise((resolve, reject) => {
        const arm = (ms) => {
          clearTimeout(watchdog);
          // Rejected first: Deno emits 'exit' inside terminate(). Not awaited:
          // a runtime's terminate() may not end a blocked wait (Deno's).
          watchdog = setTimeout(() => {
            reject(new Error(`the worker made no progress for ${ms} ms in: ${running}\n${failuresText(failed)}`));
            worker.terminate();
          }, ms);
        };
        arm(LOAD_MS);
        worker.on('message', (m) => {
          if (m.running !== undefined) {
            running = m.running;
            arm(Math.max(m.timeout, DEFAULT_TIMEOUT_MS) + STALL_GRACE_MS);
          } else if (m.failed) {
            failed.push(m.failed);
          } else if (m.done) {
            result = m.done;
            clearTimeout(watchdog);
            exitTimer = setTimeout(() => {
              terminated = true;
              worker.terminate();
            }, EXIT_GRACE_MS);
          }
        });
        worker.on('error', reject);
        worker.on('exit', resolve);
      });
    } finally {
      clearTimeout(watchdog);
      clearTimeout(exitTimer);
    }
    assert.ok(result, `the worker reported a result (exit code ${exitCode})\n${failuresText(failed)}`);
    assert.equal(result.failures, 0, `${result.failures} failures inside the worker:\n${failuresText(failed)}`);
    assert.ok(result.passed > 0, 'tests ran');
    assert.equal(terminated, false, `the worker did not exit within ${EXIT_GRACE_MS} ms of its last test`);
    assert.equal(exitCode, 0);
  });
});

function failuresText(failed) {
  return failed.map((f) => `${f.title}\n${f.error}`).join('\n\n');
}
