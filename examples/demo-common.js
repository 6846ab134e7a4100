// What the demo's three layers (main process, child processes, worker
// threads) agree on: the counter file's format and the kinds of lock.
const fs = require('node:fs');
const path = require('node:path');
const { FileLock, SharedMutex } = require('interlock');

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
  // A buffer with offset, length and position: every runtime honours that
  // form's position (the string form's is not honoured by every Deno).
  const buf = Buffer.from(`${String(value).padStart(WIDTH - 1, '0')}\n`, 'latin1');
  fs.writeSync(fd, buf, 0, buf.length, 0);
}

// The run's temp directory name doubles as the SharedMutex name (it fits
// [A-Za-z0-9._-]), so two demos at once never share a mutex.
const mutexName = (dir) => path.basename(dir);

// Each kind: its name in the output, how a worker thread opens it, and what
// to remove once every process is gone.
const LOCKS = {
  file: {
    label: 'FileLock',
    open: (dir) => new FileLock(path.join(dir, 'counter.lock')),
    remove: () => {}, // the lock file goes with the directory
  },
  mutex: {
    label: 'SharedMutex',
    open: (dir) => new SharedMutex(mutexName(dir)),
    remove: (dir) => {
      try {
        SharedMutex.unlink(mutexName(dir));
      } catch (err) {
        if (err.code !== 'ENOENT') throw err; // no thread got as far as opening it
      }
    },
  },
};

module.exports = { LOCKS, counterPath, readCounter, writeCounter };
