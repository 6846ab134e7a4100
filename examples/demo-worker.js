// One worker thread of the demo: `increments` times, read the counter, sleep
// 1 ms, write it back plus one. The lock (if any) is held around all three.
const fs = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const { LOCKS, counterPath, readCounter, writeCounter } = require('./demo-common');

const { dir, lock: kind, api, increments } = workerData;
const fd = fs.openSync(counterPath(dir), 'r+');
const lock = kind === 'none' ? null : LOCKS[kind].open(dir);
const pause = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function incrementAsync() {
  const handle = lock === null ? null : await lock.acquire();
  try {
    const value = readCounter(fd);
    await sleep(1);
    writeCounter(fd, value + 1);
  } finally {
    handle?.release();
  }
}

function incrementSync() {
  const handle = lock === null ? null : lock.acquireSync();
  try {
    const value = readCounter(fd);
    Atomics.wait(pause, 0, 0, 1); // a 1 ms sleep that blocks this thread, like the lock wait does
    writeCounter(fd, value + 1);
  } finally {
    handle?.release();
  }
}

async function main() {
  for (let i = 0; i < increments; i++) {
    if (api === 'sync') incrementSync();
    else await incrementAsync();
  }
  lock?.close();
  fs.closeSync(fd);
  parentPort.postMessage({ type: 'done', increments });
}

parentPort.once('message', () => {
  main().catch((err) => {
    throw err; // surfaces as the Worker's 'error' event in the process
  });
});
parentPort.postMessage({ type: 'ready' });
