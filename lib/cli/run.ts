// `interlock <file> <command>`: hold a FileLock while a child runs, with
// flock(1)'s exit statuses; and `interlock <fd>`: flock an inherited fd.
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { FileLock } from '../file-lock';
import { flock } from '../flock';
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

export interface LockRequest {
  shared: boolean;
  unlock: boolean;
  nonblock: boolean;
  /** Milliseconds, or undefined to wait for ever. */
  timeout: number | undefined;
  conflictExitCode: number;
  verbose: boolean;
}

interface Held {
  release(): void;
}

// FileLock opens O_RDWR|O_CREAT|O_NOFOLLOW and only regular files; flock(1)
// also locks directories, devices, read-only files and symlinks by opening
// them read-only. For those we do the same on an fd of our own.
const READ_ONLY_FALLBACK = new Set(['EISDIR', 'EINVAL', 'EACCES', 'EPERM', 'EROFS', 'ELOOP']);

/** The lock, or null when it is busy (-n) or the timeout expired (-w). */
async function lockPath(path: string, req: LockRequest): Promise<Held | null> {
  const lock = new FileLock(path, { mode: 0o666 }); // flock(1) creates 0666 & ~umask
  let refused: unknown;
  try {
    const handle = req.nonblock
      ? lock.tryAcquire({ shared: req.shared })
      : await lock.acquire({ shared: req.shared, timeout: req.timeout });
    if (handle !== null) return { release: () => lock.close() };
    lock.close();
    return null;
  } catch (err) {
    lock.close();
    if (errorCode(err) === 'ETIMEDOUT') return null;
    if ((err as { syscall?: string }).syscall !== 'open' || !READ_ONLY_FALLBACK.has(errorCode(err) ?? '')) throw err;
    refused = err;
  }
  let fd: number;
  try {
    // Node opens every fd O_CLOEXEC, so the command does not inherit it.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch {
    throw refused;
  }
  try {
    const op = req.shared ? 'sh' : 'ex';
    if (await flock(fd, op, { nonblocking: req.nonblock, timeout: req.timeout }))
      return { release: () => closeSync(fd) };
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
  const code = errorCode(err);
  if ((err as { syscall?: string }).syscall === 'open') {
    warn(`cannot open lock file ${what}: ${describeError(err)}`);
    if (code === 'ENOMEM' || code === 'EMFILE' || code === 'ENFILE') return EX_OSERR;
    return code === 'EROFS' || code === 'ENOSPC' ? EX_CANTCREAT : EX_NOINPUT;
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

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Runs argv with our stdio; resolves its exit status the way a shell reports it. */
function runChild(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const [file, ...args] = argv as [string, ...string[]];
    const failed = (err: unknown) => {
      warn(`failed to execute ${file}: ${describeError(err)}`);
      return errorCode(err) === 'ENOMEM' ? EX_OSERR : EX_UNAVAILABLE;
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, args, { stdio: 'inherit' });
    } catch (err) {
      resolve(failed(err)); // libuv errors Node does not defer, e.g. ENOTDIR
      return;
    }
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of FORWARDED) process.on(signal, forward);
    const finish = (status: number) => {
      for (const signal of FORWARDED) process.off(signal, forward);
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
  let held: Held | null;
  try {
    // flock(1) -u on a fresh fd unlocks nothing: the command runs unlocked.
    held = req.unlock ? { release() {} } : await lockPath(path, req);
  } catch (err) {
    return lockFailure(err, path);
  }
  if (held === null) return conflict(req);
  reportWait(req, started);
  if (req.verbose) process.stdout.write(`interlock: executing ${argv[0]}\n`);
  try {
    return await runChild(argv);
  } finally {
    held.release();
  }
}

/** `interlock [options] <fd>`: lock (or -u unlock) a descriptor the shell opened. */
export async function lockDescriptor(text: string, req: LockRequest): Promise<number> {
  const fd = /^\d+$/.test(text) ? Number(text) : -1;
  if (!(fd >= 0 && fd <= 2 ** 31 - 1)) throw new UsageError(`bad file descriptor: '${text}'`);
  const started = process.hrtime.bigint();
  try {
    const op = req.unlock ? 'un' : req.shared ? 'sh' : 'ex';
    if (!(await flock(fd, op, { nonblocking: req.nonblock, timeout: req.timeout }))) return conflict(req);
  } catch (err) {
    if (errorCode(err) === 'ETIMEDOUT') return conflict(req);
    return lockFailure(err, text);
  }
  reportWait(req, started);
  return 0;
}
