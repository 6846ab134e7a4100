// Who holds a flock(2) lock and who waits, read from /proc/locks by the
// file's device and inode: FileLock.status() and `interlock status`. Opens
// the file only to confirm a lock /proc/locks does not show.
import { type BigIntStats, closeSync, constants, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { flockSync } from './flock';
import { native } from './native';
import type { LockMode } from './web-locks';

/** A process that holds or waits for a lock file, as `/proc/locks` lists it. */
export interface LockProcess {
  /** In the caller's PID namespace. */
  pid: number;
  /** The mode it holds or asks for. */
  mode: LockMode;
  /** Whether the pid still runs; a dead holder's fd may live on in its children. */
  alive: boolean;
  /** argv from /proc/<pid>/cmdline; null when unreadable. */
  command: string[] | null;
  /** Holds the lock through a descriptor inherited from `pid`s of the holders list. */
  inherited?: boolean;
}

/**
 * Who holds a lock file and who waits for it, read without taking the lock:
 * what {@link FileLock.status} returns and `interlock status --json` prints.
 */
export interface FileStatus {
  /** As given (a Buffer decoded as UTF-8, for display). */
  path: string;
  /** The file's device as `major:minor` in hex, the way `/proc/locks` writes it. */
  device: string;
  /** The file's inode number, in decimal (a string: inodes can pass 2^53). */
  inode: string;
  /** Whether anyone holds the lock, including holders only the probe could see. */
  held: boolean;
  /** Processes of this PID namespace that hold the lock. */
  holders: LockProcess[];
  /** Processes of this PID namespace blocked in `flock(2)` for it. */
  waiters: LockProcess[];
  /**
   * Set when /proc/locks shows no holder but a non-blocking probe finds the
   * lock taken: the holders run outside this PID namespace, where
   * /proc/locks does not list them. Their mode, as the probe tells it.
   */
  heldOutside: LockMode | null;
  /**
   * Handoff mode (issue 14): a starving interlock waiter's turn is pending,
   * so interlock users step aside for it (flock(1) and other flock users do
   * not). From this user's marks of the file; false without them.
   */
  handoff: boolean;
  /** Turns taken so far by starving interlock waiters of this user (0 without marks). */
  handoffs: number;
}

interface ProcLock {
  waiting: boolean;
  mode: LockMode;
  pid: number;
  major: number;
  minor: number;
  inode: bigint;
}

// "1: FLOCK  ADVISORY  WRITE 7224 fe:00:2146763 0 EOF"; a blocked request
// shows "1: -> FLOCK ..." under the lock it waits for.
const LINE = /^\d+:\s+(->\s+)?FLOCK\s+\S+\s+(READ|WRITE)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/;

export function parseLocks(text: string): ProcLock[] {
  const locks: ProcLock[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (m === null) continue;
    locks.push({
      waiting: m[1] !== undefined,
      mode: m[2] === 'READ' ? 'shared' : 'exclusive',
      pid: Number(m[3]),
      major: Number.parseInt(m[4] as string, 16),
      minor: Number.parseInt(m[5] as string, 16),
      inode: BigInt(m[6] as string),
    });
  }
  return locks;
}

/** glibc's major()/minor() of a stat st_dev. */
function splitDevice(dev: bigint): [number, number] {
  const major = ((dev & 0xfff00n) >> 8n) | ((dev & 0xfffff00000000000n) >> 32n);
  const minor = (dev & 0xffn) | ((dev & 0xffffff00000n) >> 12n);
  return [Number(major), Number(minor)];
}

export function commandOf(pid: number): string[] | null {
  if (pid <= 0) return null;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    return argv.length === 0 ? null : argv;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

function owner(pid: number, mode: LockMode): LockProcess {
  return { pid, mode, alive: isAlive(pid), command: commandOf(pid) };
}

/**
 * Processes whose open fds carry the lock ("lock:" lines in fdinfo). Needed
 * when the pid /proc/locks names has exited and left the fd to its children,
 * as flock(1) does when it is killed. Only processes we may inspect are seen.
 */
function inheritors(matches: (lock: ProcLock) => boolean): Map<number, LockMode> {
  const found = new Map<number, LockMode>();
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let text: string;
      try {
        text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      } catch {
        continue;
      }
      const lines = text.split('\n').filter((l) => l.startsWith('lock:'));
      for (const lock of parseLocks(lines.map((l) => l.slice(5).trim()).join('\n'))) {
        if (matches(lock)) found.set(Number(pid), lock.mode);
      }
    }
  }
  return found;
}

/**
 * Whether someone holds the lock, by trying to take it without waiting, on
 * an fd of our own (closed at once, which drops what the probe got): a
 * shared try fails only against an exclusive holder, an exclusive one
 * against any. Null when the file cannot be opened for reading or is free.
 * While it runs, the probe itself is a holder for an instant.
 */
function probe(path: string | Buffer): LockMode | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!flockSync(fd, 'sh', { nonblocking: true })) return 'exclusive';
    return flockSync(fd, 'ex', { nonblocking: true }) ? null : 'shared';
  } finally {
    closeSync(fd);
  }
}

/**
 * The /proc/locks lines of one file, one per process and mode. The kernel
 * serves /proc/locks a page per read(2) and walks its lock list afresh for
 * each page, by position: a lock taken or dropped anywhere on the machine
 * between two pages repeats or skips a line at the boundary (seen: a
 * holder listed twice while other processes churned locks). So the file is
 * read until two reads agree on this file's lines (a few tries), and a
 * process is listed once per mode and state.
 */
function linesOf(same: (l: ProcLock) => boolean): ProcLock[] {
  const read = () => {
    const seen = new Map<string, ProcLock>();
    for (const l of parseLocks(readFileSync('/proc/locks', 'utf8'))) {
      if (same(l)) seen.set(`${l.waiting} ${l.mode} ${l.pid}`, l);
    }
    return seen;
  };
  let last = read();
  for (let tries = 0; tries < 8; tries++) {
    const next = read();
    if (next.size === last.size && [...next.keys()].every((k) => last.has(k))) return [...next.values()];
    last = next;
  }
  return [...last.values()];
}

/** Throws the stat error (ENOENT…) when the file cannot be looked up. */
export function fileStatus(path: string | Buffer): FileStatus {
  const st = statSync(path, { bigint: true });
  const first = statusFrom(path, st);
  if (first.heldOutside === null) return first;
  // A holder that came between the read and the probe is no outsider.
  const again = statusFrom(path, st, false);
  return again.held ? again : first;
}

function statusFrom(path: string | Buffer, st: BigIntStats, probing = true): FileStatus {
  const [major, minor] = splitDevice(st.dev);
  const same = (l: ProcLock) => l.major === major && l.minor === minor && l.inode === st.ino;
  const mine = linesOf(same);
  const holders = mine.filter((l) => !l.waiting).map((l) => owner(l.pid, l.mode));
  const waiters = mine.filter((l) => l.waiting).map((l) => owner(l.pid, l.mode));
  if (holders.some((h) => !h.alive)) {
    const listed = new Set(holders.map((h) => h.pid));
    for (const [pid, mode] of inheritors((l) => !l.waiting && same(l))) {
      if (!listed.has(pid)) holders.push({ ...owner(pid, mode), inherited: true });
    }
  }
  const heldOutside = holders.length === 0 && probing ? probe(path) : null;
  const device = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
  const held = holders.length > 0 || heldOutside !== null;
  const { handoff, handoffs } = native.LockFile.turnsOf(path);
  return {
    path: path.toString(),
    device,
    inode: st.ino.toString(),
    held,
    holders,
    waiters,
    heldOutside,
    handoff,
    handoffs,
  };
}
