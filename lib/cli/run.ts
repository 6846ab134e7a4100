// `interlock <file> <command>`: hold a flock(2) lock while a child runs, with
// flock(1)'s exit statuses; and `interlock <fd>`: flock an inherited fd.
import { type StdioOptions, spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { unsafeFilesystemError } from '../errors';
import { type FlockOperation, flockSync } from '../flock';
import { native } from '../native';
import {
  describeError,
  EX_CANTCREAT,
  EX_DATAERR,
  EX_NOINPUT,
  EX_OSERR,
  EX_UNAVAILABLE,
  errorCode,
  UsageError,
  warn,
} from './exit';
import { forwardSignals } from './signals';

export interface LockRequest {
  shared: boolean;
  unlock: boolean;
  nonblock: boolean;
  /** Milliseconds, or undefined to wait for ever. */
  timeout: number | undefined;
  conflictExitCode: number;
  verbose: boolean;
  /** -o: the command does not inherit the lock's fd. */
  close: boolean;
  /** --allow-unsafe-filesystem: lock on NFS, FUSE and the like too. */
  allowUnsafeFilesystem: boolean;
}

// Read-write where we may (NFS wants it for LOCK_EX), created 0666 & ~umask
// as flock(1) does; read-only for what flock(1) also locks but cannot be
// opened for writing: directories, read-only files and filesystems.
const READ_ONLY_FALLBACK = new Set(['EISDIR', 'EACCES', 'EPERM', 'EROFS', 'ETXTBSY']);

/** Thrown when the lock file cannot be opened; `cause` is open(2)'s error. */
class OpenError extends Error {}

/** Node opens it O_CLOEXEC; runChild decides whether the command inherits it. */
function openLockFile(path: string): number {
  try {
    return openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOCTTY, 0o666);
  } catch (err) {
    if (!READ_ONLY_FALLBACK.has(errorCode(err) ?? '')) throw new OpenError(path, { cause: err });
    try {
      return openSync(path, constants.O_RDONLY | constants.O_NOCTTY);
    } catch {
      throw new OpenError(path, { cause: err });
    }
  }
}

/**
 * flock(2) on this thread, as flock(1) waits: nothing else runs meanwhile,
 * and an untimed wait sits in the kernel's queue (which `interlock status`
 * lists) rather than on a cancellable helper thread. Signals act by their
 * default action until the command runs.
 */
function lock(fd: number, op: FlockOperation, req: LockRequest): boolean {
  return flockSync(fd, op, { nonblocking: req.nonblock, timeout: req.timeout });
}

/** FileLock's refusal of a filesystem where flock(2) may not exclude, for an fd opened here. */
function checkFilesystem(fd: number, what: string, req: LockRequest): void {
  if (req.allowUnsafeFilesystem) return;
  const fs = native.LockFile.filesystemOf(fd);
  if (fs.name !== null) throw unsafeFilesystemError(fs, what);
}

/** An fd holding the lock, or null when it is busy (-n) or the timeout expired (-w). */
function lockPath(path: string, req: LockRequest): number | null {
  const fd = openLockFile(path);
  try {
    checkFilesystem(fd, path, req);
    if (lock(fd, req.shared ? 'sh' : 'ex', req)) return fd;
  } catch (err) {
    if (errorCode(err) !== 'ETIMEDOUT') {
      closeSync(fd);
      throw err;
    }
  }
  closeSync(fd);
  return null;
}

function lockFailure(err: unknown, what: string): number {
  if (err instanceof OpenError) {
    const code = errorCode(err.cause);
    warn(`cannot open lock file ${what}: ${describeError(err.cause)}`);
    if (code === 'ENOMEM' || code === 'EMFILE' || code === 'ENFILE') return EX_OSERR;
    return code === 'EROFS' || code === 'ENOSPC' ? EX_CANTCREAT : EX_NOINPUT;
  }
  const code = errorCode(err);
  if (code === 'ERR_UNSAFE_FILESYSTEM') {
    warn(`${(err as Error).message.replace(/allowUnsafeFilesystem: true/, '--allow-unsafe-filesystem')}`);
    return EX_UNAVAILABLE;
  }
  warn(`${what}: ${describeError(err)}`);
  return code === 'ENOLCK' || code === 'ENOMEM' ? EX_OSERR : EX_DATAERR;
}

function conflict(req: LockRequest): number {
  if (req.verbose) warn(req.nonblock ? 'failed to get lock' : 'timeout while waiting to get lock');
  return req.conflictExitCode;
}

// flock(1) prints its progress on stdout and its failures on stderr.
function reportWait(req: LockRequest, started: bigint): void {
  if (!req.verbose) return;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(`interlock: getting lock took ${seconds.toFixed(6)} seconds\n`);
}

/**
 * Like flock(1) without -o, the command inherits the locked fd, at the same
 * number, so the lock lasts while either of us holds it: interlock dying of a
 * signal it does not handle leaves the command locked. The slots between 2 and
 * `lockFd` stay 'ignore', which for fds above 2 leaves whatever the command
 * would inherit anyway.
 */
function childStdio(lockFd: number | null): StdioOptions {
  if (lockFd === null || lockFd < 3) return 'inherit';
  const stdio: StdioOptions = ['inherit', 'inherit', 'inherit'];
  for (let fd = 3; fd < lockFd; fd++) stdio.push('ignore');
  stdio.push(lockFd);
  return stdio;
}

/** Runs argv with our stdio; resolves its exit status the way a shell reports it. */
function runChild(argv: string[], lockFd: number | null): Promise<number> {
  return new Promise((resolve) => {
    const [file, ...args] = argv as [string, ...string[]];
    const failed = (err: unknown) => {
      warn(`failed to execute ${file}: ${describeError(err)}`);
      return errorCode(err) === 'ENOMEM' ? EX_OSERR : EX_UNAVAILABLE;
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, args, { stdio: childStdio(lockFd) });
    } catch (err) {
      resolve(failed(err)); // libuv errors Node does not defer, e.g. ENOTDIR
      return;
    }
    const stopForwarding = forwardSignals(child);
    const finish = (status: number) => {
      stopForwarding();
      resolve(status);
    };
    child.once('error', (err) => {
      if (child.pid === undefined) finish(failed(err)); // else a failed kill(), not a failed start
    });
    child.once('exit', (code, signal) => {
      finish(code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0)));
    });
  });
}

/** `interlock [options] <file> <command...>` or `<file> -c <string>`. */
export async function runLocked(path: string, command: string[], req: LockRequest): Promise<number> {
  let argv = command;
  if (command[0] === '-c') {
    if (command.length !== 2) throw new UsageError('-c requires exactly one command argument');
    argv = [process.env.SHELL || '/bin/sh', '-c', command[1] as string];
  }
  const started = process.hrtime.bigint();
  let fd: number | null = null;
  if (!req.unlock) {
    // (flock(1) -u on a fresh fd unlocks nothing: the command runs unlocked.)
    try {
      fd = lockPath(path, req);
    } catch (err) {
      return lockFailure(err, path);
    }
    if (fd === null) return conflict(req);
  }
  try {
    // A SIGUSR1 that came while flock(2) held this thread waits in the event
    // loop: it ends us here (see signals.ts) rather than reach the command.
    await new Promise(setImmediate);
    reportWait(req, started);
    if (req.verbose) process.stdout.write(`interlock: executing ${argv[0]}\n`);
    return await runChild(argv, req.close ? null : fd);
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** `interlock [options] <fd>`: lock (or -u unlock) a descriptor the shell opened. */
export function lockDescriptor(text: string, req: LockRequest): number {
  const fd = /^\d+$/.test(text) ? Number(text) : -1;
  if (!(fd >= 0 && fd <= 2 ** 31 - 1)) throw new UsageError(`bad file descriptor: '${text}'`);
  const started = process.hrtime.bigint();
  try {
    const op = req.unlock ? 'un' : req.shared ? 'sh' : 'ex';
    if (op !== 'un') checkFilesystem(fd, text, req);
    if (!lock(fd, op, req)) return conflict(req);
  } catch (err) {
    if (errorCode(err) === 'ETIMEDOUT') return conflict(req);
    return lockFailure(err, text);
  }
  reportWait(req, started);
  return 0;
}
