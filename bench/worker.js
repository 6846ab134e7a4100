'use strict';
// A persistent Worker of a bench child: runs contended loops on request.
const { parentPort } = require('node:worker_threads');
const looper = require('./looper');

parentPort.on('message', (cmd) => {
  Promise.resolve()
    .then(() => looper[cmd.op](cmd))
    .then(
      (result) => parentPort.postMessage({ result }),
      (err) => parentPort.postMessage({ error: String(err?.stack ?? err) }),
    );
});
