// One worker thread of a server process: opens its own lock and store, then
// does what the process's HTTP thread asks. Each job (K increments) runs as
// an async task, so two jobs sent to one thread interleave like two
// requests would; /clear and /total queue up behind the lock like any task.
const { parentPort, threadId, workerData } = require('node:worker_threads');
const { openCounter } = require('./counter');

async function runJob(counter, increments, sleepMs) {
  for (let i = 0; i < increments; i++) await counter.increment(sleepMs);
  return increments;
}

const tasks = {
  run: (counter, msg) => runJob(counter, msg.increments, msg.sleepMs),
  read: (counter) => counter.read(),
  clear: (counter) => counter.clear().then(() => 0),
};

openCounter(workerData).then((counter) => {
  parentPort.on('message', (msg) => {
    tasks[msg.type](counter, msg).then(
      (value) => parentPort.postMessage({ type: 'result', id: msg.id, value }),
      (err) => parentPort.postMessage({ type: 'result', id: msg.id, error: err.stack ?? String(err) }),
    );
  });
  parentPort.postMessage({ type: 'ready', threadId });
});
// A failure to open surfaces as the Worker's 'error' event in the process.
