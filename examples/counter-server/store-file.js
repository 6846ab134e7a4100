// The counter as a fixed-width decimal in a file, rewritten in place, so a
// write never truncates the file under a concurrent reader.
const fs = require('node:fs');

const WIDTH = 16;

function openFileStore(file) {
  const fd = fs.openSync(file, 'r+');
  const buf = Buffer.alloc(WIDTH);
  return {
    describe: `file ${file}`,
    read() {
      const n = fs.readSync(fd, buf, 0, WIDTH, 0);
      return Number.parseInt(buf.toString('latin1', 0, n), 10) || 0;
    },
    write(value) {
      fs.writeSync(fd, `${String(value).padStart(WIDTH - 1, '0')}\n`, 0);
    },
    close() {
      fs.closeSync(fd);
    },
  };
}

module.exports = { openFileStore };
