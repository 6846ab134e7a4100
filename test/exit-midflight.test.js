'use strict';
// Regression: process.exit() while workers are mid-acquire once aborted the
// process ("FATAL ERROR: Error::New napi_get_last_error_info") in 2-4 runs of
// 40, because the binding used node-addon-api's checked calls after JS could
// no longer run. Each run here must exit 0.
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { SharedMutex } = require('..');
const { tmpDir } = require('./helpers');

const fixture = path.join(__dirname, 'fixtures', 'exit-midflight.js');

function run(kind, target) {
  return new Promise((resolve) => {
    execFile(process.execPath, [fixture, kind, target], { timeout: 30000 }, (err, _out, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, stderr });
    });
  });
}

async function runMany(kind, target, times) {
  const results = [];
  for (let i = 0; i < times; i += 2) results.push(...(await Promise.all([run(kind, target), run(kind, target)])));
  return results;
}

describe('process.exit() while workers wait and hold', () => {
  it('FileLock: every run exits 0, no fatal error', async () => {
    const results = await runMany('file', path.join(tmpDir(), 'exit.lock'), 8);
    const bad = results.filter((r) => r.code !== 0);
    assert.deepEqual(bad, [], `runs that did not exit 0: ${JSON.stringify(bad).slice(0, 500)}`);
  });

  it('SharedMutex: every run exits 0, no fatal error', async () => {
    const name = `ilt-exit-${process.pid}`;
    try {
      const results = await runMany('mutex', name, 8);
      const bad = results.filter((r) => r.code !== 0);
      assert.deepEqual(bad, [], `runs that did not exit 0: ${JSON.stringify(bad).slice(0, 500)}`);
    } finally {
      try {
        SharedMutex.unlink(name);
      } catch {}
    }
  });
});
