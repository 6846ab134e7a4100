'use strict';
// The C floor: compiled by the bench itself, run as a child.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

function build(dir) {
  const out = path.join(dir, 'floor');
  execFileSync('cc', ['-O2', '-o', out, path.join(__dirname, 'floor.c'), '-lpthread'], { stdio: 'inherit' });
  return out;
}

function pairs(bin, kind, lockPath, ms, reps) {
  const text = execFileSync(bin, ['pair', kind, lockPath, String(ms), String(reps)], { encoding: 'utf8' });
  return text.trim().split('\n').map(Number);
}

/** One contended run: { counter, counts, transfers, elapsedNs }. */
function contend(bin, kind, lockPath, procs, threads, ms) {
  const args = ['contend', kind, lockPath, String(procs), String(threads), String(ms)];
  return JSON.parse(execFileSync(bin, args, { encoding: 'utf8', timeout: ms + 30000 }));
}

/** Release in one process → the waiter's code running in another, µs per sample. */
function handoff(bin, kind, shape, lockPath, samples, pauseUs) {
  const args = ['handoff', kind, shape, lockPath, String(samples), String(pauseUs)];
  return JSON.parse(execFileSync(bin, args, { encoding: 'utf8', timeout: samples * (pauseUs / 1000 + 100) + 30000 }));
}

module.exports = { build, pairs, contend, handoff };
