'use strict';
// A bench child process: does what the parent asks over IPC, one request at
// a time, and keeps its Workers between requests so spawning stays out of
// the figures.
const { Worker } = require('node:worker_threads');
const path = require('node:path');
const looper = require('./looper');
const { pairs } = require('./pairs');
const roles = require('./roles');

const workers = [];

function workerAt(i) {
  while (workers.length <= i) {
    const w = new Worker(path.join(__dirname, 'worker.js'));
    w.unref();
    workers.push(w);
  }
  return workers[i];
}

function onWorker(w, cmd) {
  return new Promise((resolve, reject) => {
    w.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m.result)));
    w.postMessage(cmd);
  });
}

// { threads: 0 } runs on this thread; otherwise in that many Workers, with
// looper ids id, id+1, ...
async function onLoopers(op, cmd) {
  if (!cmd.threads) return [await looper[op](cmd)];
  const runs = [];
  for (let i = 0; i < cmd.threads; i++) runs.push(onWorker(workerAt(i), { ...cmd, op, id: cmd.id + i }));
  return Promise.all(runs);
}

const ops = {
  contend: (cmd) => onLoopers('contend', cmd),
  prepare: (cmd) => onLoopers('prepare', cmd),
  pairs,
  ...roles,
};

process.on('message', (msg) => {
  Promise.resolve()
    .then(() => ops[msg.op](msg))
    .then(
      (result) => process.send({ seq: msg.seq, result }),
      (err) => process.send({ seq: msg.seq, error: String(err?.stack ?? err) }),
    );
});
// The parent went away: nothing left to report to.
process.on('disconnect', () => process.exit(0));
