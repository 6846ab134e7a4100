'use strict';
// Where a FileLock keeps its token and holder marks: the region name of
// native/core/file_marks.cc (FileMarks::name_for), for this process's user.
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

/**
 * The birth time of `file` in ns. Deno's stat rounds every time to whole
 * milliseconds, even with `bigint: true` (its birthtimeNs ends in 000000), so
 * there statx's full value comes from coreutils' stat(1) instead.
 */
function birthNs(file) {
  if (!process.versions.deno) return fs.statSync(file, { bigint: true }).birthtimeNs;
  const [s, ns] = execFileSync('stat', ['-c', '%.9W', file], { encoding: 'utf8' }).trim().split('.');
  return BigInt(s) * 1000000000n + BigInt(ns);
}

/** /dev/shm/interlock-file-<euid>-<dev>-<ino>-<birth time in ns, hex> of the file at `file`. */
function marksRegionOf(file) {
  const st = fs.statSync(file, { bigint: true });
  return `/dev/shm/interlock-file-${process.geteuid()}-${st.dev}-${st.ino}-${birthNs(file).toString(16)}`;
}

module.exports = { marksRegionOf };
