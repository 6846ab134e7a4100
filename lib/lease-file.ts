// The small file in which a remote lock's holder leaves a still-valid lease
// for the next holder of the same machine-local lock (RedisLock with
// `local: true`). Only the holder of the local lock writes or claims a
// record, so no locking of its own is needed for order; what is read is
// trusted only when it is a regular file of this user that nobody else may
// write (a record planted by another user could otherwise grant a lock the
// server never did).
//
// The file stays open between passes and is rewritten in place: a record is
// its text and a newline at offset 0 (a longer old record may follow; it is
// not read), and an empty first line means none. A pass then costs one
// pwrite, one pread to claim it and one pwrite to mark it claimed, where
// creating, reading and unlinking a file per pass took ~13 syscalls and
// journalled metadata (~60 µs on ext4 against ~5 µs; bench/remote.js).
import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { flockSync } from './flock';

const MAX_RECORD = 4096;
// The file is closed after this long unused, so a lock that is never closed
// holds its fd only while in use. (Node closes a worker's fs.open fds when
// the worker ends, trackUnmanagedFds; runtimes that do not would keep it.)
const IDLE_MS = 1000;
const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
const CLAIMED = Buffer.from('\n');

function trusted(fd: number): boolean {
  const st = fstatSync(fd);
  return st.isFile() && st.uid === uid && (st.mode & 0o022) === 0;
}

/** One lock's lease record file, kept open while in use. */
export class LeaseFile {
  readonly path: string;
  #fd = -1;
  #idle: NodeJS.Timeout | undefined;
  readonly #buf = Buffer.allocUnsafe(MAX_RECORD);

  constructor(path: string) {
    this.path = path;
  }

  /** The open fd, or -1 when the file cannot be opened or trusted. */
  #open(): number {
    if (this.#idle === undefined) {
      this.#idle = setTimeout(() => this.close(), IDLE_MS);
      this.#idle.unref();
    } else {
      this.#idle.refresh();
    }
    if (this.#fd >= 0) return this.#fd;
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    } catch {
      return -1;
    }
    try {
      if (trusted(fd)) {
        this.#fd = fd;
        return fd;
      }
    } catch {}
    closeSync(fd);
    return -1;
  }

  /** The record left, or undefined when there is none (or none to trust). */
  read(): string | undefined {
    const fd = this.#open();
    if (fd < 0) return undefined;
    let n: number;
    try {
      n = readSync(fd, this.#buf, 0, MAX_RECORD, 0);
    } catch {
      return undefined;
    }
    const end = this.#buf.indexOf(10);
    // No newline: cut short (a full disk), so unreadable; the caller clears it.
    const text = this.#buf.toString('utf8', 0, end >= 0 && end < n ? end : n);
    return text === '' ? undefined : text;
  }

  /** Leaves `text` (one line) for the next holder; false when it could not be written (the caller releases instead). */
  write(text: string): boolean {
    const fd = this.#open();
    if (fd < 0) return false;
    const bytes = Buffer.from(`${text}\n`);
    if (bytes.length > MAX_RECORD) return false;
    try {
      return writeSync(fd, bytes, 0, bytes.length, 0) === bytes.length;
    } catch {
      return false;
    }
  }

  /**
   * Claims `record`: once marked claimed, no other holder can take its lease.
   * False when it is no longer there or could not be marked: then it is not
   * the caller's to use either. The file's own flock makes the look and the
   * mark one step even if two processes ever held the local lock at once (its
   * file replaced under a holder), as unlinking the record did before.
   */
  claim(record: string): boolean {
    const fd = this.#open();
    if (fd < 0) return false;
    try {
      if (!flockSync(fd, 'ex', { nonblocking: true })) return false;
    } catch {
      return false;
    }
    try {
      return this.read() === record && writeSync(fd, CLAIMED, 0, 1, 0) === 1;
    } catch {
      return false;
    } finally {
      try {
        flockSync(fd, 'un');
      } catch {}
    }
  }

  /** Closes the file (reopened on the next use). */
  close(): void {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}
