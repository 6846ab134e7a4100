'use strict';
// One process of the contended remote bench: 4 worker threads, each with a
// client of its own, loop acquire → count → release on one name for a fixed
// time. Prints "ready" once every worker has loaded its client and opened
// its lock, starts them all on a line ("go") on stdin, and prints one JSON
// line: each worker's acquisitions and the queries it sent (PostgreSQL;
// Redis counts on the server).
//   node bench/remote-contender.js IMPL URL NAME MS LOCALDIR
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const WORKERS = 4;

if (isMainThread) {
  const [impl, url, name, ms, localDir] = process.argv.slice(2);
  const workers = Array.from(
    { length: WORKERS },
    () => new Worker(__filename, { workerData: { impl, url, name, ms: Number(ms), localDir } }),
  );
  const next = (w) =>
    new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  const failed = (err) => {
    console.error(err.stack);
    process.exit(1);
  };
  // Loading a client takes a worker up to seconds of CPU on a busy machine:
  // a worker that started counting while others still loaded would measure
  // them, not the lock, so all start together once every process is ready.
  Promise.all(workers.map(next)).then(() => {
    const results = Promise.all(workers.map(next));
    process.stdout.write('ready\n');
    let started = false;
    process.stdin.once('data', () => {
      started = true;
      for (const w of workers) w.postMessage('go');
    });
    // The bench gave up (another contender failed): no go will come.
    process.stdin.once('end', () => started || process.exit(1));
    results.then((r) => console.log(JSON.stringify(r)), failed);
  }, failed);
} else {
  const { lockers } = require('./remote-impls');
  (async () => {
    const { impl, url, name, ms, localDir } = workerData;
    const locker = await lockers[impl].open(url, name, { localDir });
    const go = new Promise((resolve) => parentPort.once('message', resolve));
    parentPort.postMessage('ready');
    await go;
    const end = Date.now() + ms;
    const queries0 = locker.queries?.() ?? 0;
    let acquisitions = 0;
    while (Date.now() < end) {
      await locker.pair();
      acquisitions++;
    }
    const queries = (locker.queries?.() ?? 0) - queries0;
    await locker.close();
    parentPort.postMessage({ acquisitions, queries });
  })();
}
