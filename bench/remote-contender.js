'use strict';
// One process of the contended remote bench: 4 worker threads, each with a
// client of its own, loop acquire → count → release on one name for a fixed
// time. Prints one JSON line: each worker's acquisitions and the queries it
// sent (PostgreSQL; Redis counts on the server).
//   node bench/remote-contender.js IMPL URL NAME MS LOCALDIR
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { lockers } = require('./remote-impls');

const WORKERS = 4;

if (isMainThread) {
  const [impl, url, name, ms, localDir] = process.argv.slice(2);
  const runs = Array.from(
    { length: WORKERS },
    () =>
      new Promise((resolve, reject) => {
        const w = new Worker(__filename, { workerData: { impl, url, name, ms: Number(ms), localDir } });
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  Promise.all(runs).then(
    (results) => console.log(JSON.stringify(results)),
    (err) => {
      console.error(err.stack);
      process.exit(1);
    },
  );
} else {
  (async () => {
    const { impl, url, name, ms, localDir } = workerData;
    const locker = await lockers[impl].open(url, name, { localDir });
    // Everyone starts together: the parent's clock is shared through Date.
    const end = Date.now() + ms;
    let acquisitions = 0;
    while (Date.now() < end) {
      await locker.pair();
      acquisitions++;
    }
    const queries = locker.queries?.() ?? 0;
    await locker.close();
    parentPort.postMessage({ acquisitions, queries });
  })();
}
