'use strict';
// Where a FileLock keeps its token and holder marks: the region name of
// native/core/file_marks.cc (FileMarks::name_for), for this process's user.
const fs = require('node:fs');

/** /dev/shm/interlock-file-<euid>-<dev>-<ino>-<birth time in ns, hex> of the file at `file`. */
function marksRegionOf(file) {
  const st = fs.statSync(file, { bigint: true });
  return `/dev/shm/interlock-file-${process.geteuid()}-${st.dev}-${st.ino}-${st.birthtimeNs.toString(16)}`;
}

module.exports = { marksRegionOf };
