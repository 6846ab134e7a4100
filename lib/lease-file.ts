// The small file in which a remote lock's holder leaves a still-valid lease
// for the next holder of the same machine-local lock (RedisLock with
// `local: true`). Only the holder of the local lock reads, writes or removes
// it, so no locking of its own is needed; what is read is trusted only when
// it is a regular file of this user that nobody else may write (a record
// planted by another user could otherwise grant a lock the server never did).
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';

const MAX_RECORD = 4096;
const uid = typeof process.getuid === 'function' ? process.getuid() : -1;

function trusted(fd: number): boolean {
  const st = fstatSync(fd);
  return st.isFile() && st.uid === uid && (st.mode & 0o022) === 0;
}

/** Leaves `text` for the next holder; false when it could not be written (the caller releases instead). */
export function writeLease(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  } catch {
    return false;
  }
  try {
    if (!trusted(fd)) return false; // a reader would not trust it either
    const bytes = Buffer.from(text);
    return writeSync(fd, bytes) === bytes.length;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** The record left in `path`, or undefined when there is none (or none to trust). */
export function readLease(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    if (!trusted(fd)) return undefined;
    const buf = Buffer.alloc(MAX_RECORD);
    const n = readSync(fd, buf, 0, MAX_RECORD, 0);
    return buf.toString('utf8', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Claims the record: once removed, no other holder can take the lease. False
 * when it could not be removed: then it is not the caller's to use either.
 */
export function removeLease(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}
