// One child process of the demo: starts its worker threads, passes on the
// start signal, and reports back how many increments its threads made.
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const config = JSON.parse(process.argv[2]);
const workers = [];
let ready = 0;
let finished = 0;
let increments = 0;

function fail(err) {
  process.send({ type: 'error', message: err?.stack ?? String(err) }, () => process.exit(1));
}

for (let i = 0; i < config.threads; i++) {
  const worker = new Worker(path.join(__dirname, 'demo-worker.js'), { workerData: config });
  worker.on('error', fail);
  worker.on('message', (msg) => {
    if (msg.type === 'ready' && ++ready === config.threads) process.send({ type: 'ready' });
    if (msg.type !== 'done') return;
    increments += msg.increments;
    if (++finished === config.threads) process.send({ type: 'done', increments }, () => process.disconnect());
  });
  workers.push(worker);
}

process.on('message', (msg) => {
  if (msg === 'go') for (const worker of workers) worker.postMessage('go');
});
// The main process went away (Ctrl-C, crash): take the threads down with us.
process.on('disconnect', () => {
  if (finished < config.threads) process.exit(1);
});
