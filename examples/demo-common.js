// What the demo's three layers (main process, child processes, worker
// threads) agree on: the counter file's format and the kinds of lock.
const fs = require('node:fs');
const path = require('node:path');
const { FileLock } = require('interlock');

const WIDTH = 12; // fixed width, so a write never truncates the file under a reader

function counterPath(dir) {
  return path.join(dir, 'counter');
}

function readCounter(fd) {
  const buf = Buffer.alloc(WIDTH);
  const n = fs.readSync(fd, buf, 0, WIDTH, 0);
  return Number.parseInt(buf.toString('latin1', 0, n), 10);
}

function writeCounter(fd, value) {
  fs.writeSync(fd, `${String(value).padStart(WIDTH - 1, '0')}\n`, 0);
}

// Each kind: its name in the output, how a worker thread opens it, and what
// to remove once every process is gone (a named lock would unlink its name).
const LOCKS = {
  file: {
    label: 'FileLock',
    open: (dir) => new FileLock(path.join(dir, 'counter.lock')),
    remove: () => {},
  },
};

module.exports = { LOCKS, counterPath, readCounter, writeCounter };
