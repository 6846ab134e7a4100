// Errors a user can act on: system errors shaped like Node's fs errors
// (code, errno, syscall, path), and argument errors with Node's codes.
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { type NativeError, native } from './native';

/** The optional parts of a LockError: a system error's fields and a cause. */
export interface LockErrorFields {
  errno?: number;
  syscall?: string;
  path?: string;
  cause?: unknown;
}

/**
 * Every failure that is not a bad argument: timeouts, aborts, refused
 * regions, closed locks and errors from the kernel. Shaped like Node's fs
 * errors, so code that handles those handles these.
 */
export class LockError extends Error {
  /** What went wrong, to branch on: an errno name (`'ETIMEDOUT'`, `'EACCES'`) or an `ERR_*` code. */
  readonly code: string;
  /** The negative errno, for a system error (as Node's fs errors carry it). */
  readonly errno?: number;
  /** The call that failed (`'open'`, `'flock'`, `'posix_fallocate'`), for a system error. */
  readonly syscall?: string;
  /** The lock file or `/dev/shm` region the error is about, when there is one. */
  readonly path?: string;

  /** @internal Made by interlock only; the class is exported for `instanceof`. */
  constructor(code: string, message: string, fields: LockErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'LockError';
    this.code = code;
    if (fields.errno !== undefined) this.errno = fields.errno;
    if (fields.syscall !== undefined) this.syscall = fields.syscall;
    if (fields.path !== undefined) this.path = fields.path;
  }
}

/** Rejection of a wait whose AbortSignal fired; `cause` is `signal.reason`. */
export class AbortError extends LockError {
  constructor(reason: unknown, path?: string) {
    super('ABORT_ERR', 'The operation was aborted', { cause: reason, path });
    this.name = 'AbortError';
  }
}

const systemErrors = getSystemErrorMap();
const E = osConstants.errno;
// Robust mutexes return these, and neither libuv nor os.constants names them:
// the binding gives their values from the C headers.
const robustErrors = new Map<number, [string, string]>([
  [-native.errno.EOWNERDEAD, ['EOWNERDEAD', 'owner died']],
  [-native.errno.ENOTRECOVERABLE, ['ENOTRECOVERABLE', 'state not recoverable']],
]);

// libuv's map lacks errnos no uv call returns (EDEADLK, EIDRM, …); their
// names still come from the OS constants, never as UNKNOWN.
function describeErrno(errno: number): [string, string] {
  const known = systemErrors.get(errno) ?? robustErrors.get(errno);
  if (known !== undefined) return known;
  const name = Object.entries(E).find(([, value]) => value === -errno)?.[0];
  return name === undefined ? ['ERR_SYSTEM_ERROR', `system error ${-errno}`] : [name, `system error ${-errno}`];
}

/** A LockError from a negative errno, worded like Node's fs errors. */
export function systemError(errno: number, syscall: string | undefined, path?: string): LockError {
  const [code, description] = describeErrno(errno);
  let message = `${code}: ${description}`;
  if (syscall !== undefined) message += `, ${syscall}`;
  if (path !== undefined) message += ` '${path}'`;
  return new LockError(code, message, { errno, syscall, path });
}

/** What the lock that failed is, for the wording of interlock's own failures. */
export interface About {
  /** The lock kind in messages ("SharedMutex"). */
  what?: string;
  /** The caller's options.mode (a region refused as too open says it). */
  mode?: number;
  /** How this kind words an incompatible region. */
  incompatible?: string;
  /** The filesystem of a lock file refused as unsafe. */
  filesystem?: () => Filesystem;
}

/** The kernel releases at most this many robust mutexes of a dying thread (kRobustListLimit). */
export const ROBUST_LIST_LIMIT = 2048;

/**
 * The one road from the binding to a LockError: what a sync call throws and
 * what an async wait passes to its callback have one shape (native/binding/
 * errors.h), `errno` for a system error or `kind` for one of interlock's own.
 */
export function fromNative(err: unknown, path?: string, timeoutMs?: number, about: About = {}): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as NativeError;
  if (typeof e.kind === 'string') return kindError(e, path ?? '', about);
  if (typeof e.errno !== 'number') return err;
  if (e.errno === -E.ETIMEDOUT && timeoutMs !== undefined) return timeoutError(timeoutMs, path, e.syscall);
  if (e.errno === -E.ENOLCK && about.what !== undefined) {
    return new LockError(
      'ENOLCK',
      `ENOLCK: this thread already holds ${ROBUST_LIST_LIMIT} robust mutexes, the most the kernel releases when a ` +
        `thread dies; release one before acquiring '${path}' (or acquire it from another thread)`,
      { errno: e.errno, syscall: e.syscall, path },
    );
  }
  return systemError(e.errno, e.syscall, path);
}

function kindError(e: NativeError, path: string, about: About): LockError {
  const what = about.what ?? 'lock';
  switch (e.kind) {
    case 'unsafeFilesystem':
      return unsafeFilesystemError(about.filesystem?.() ?? { type: 0, name: null }, path);
    case 'tableFull':
      return new LockError('ERR_LOCK_TABLE_FULL', TABLE_FULL_MESSAGE, { path });
    case 'damaged':
      return incompatible(
        path,
        'lost pages while mapped (its file was truncated or overwritten), so writes to its data may be lost; it is ' +
          'marked broken for every user: unlink it and create it again',
      );
    case 'broken':
      return incompatible(
        path,
        'is marked broken (a user lost writes to it when its file was truncated under it): unlink it and create it again',
      );
    case 'otherKind':
      return incompatible(path, `is another kind of region, not a ${what}`);
    case 'otherPidNamespace':
      return incompatible(
        path,
        `was created in another PID namespace (a container sharing /dev/shm?): a robust mutex names its owner by ` +
          `thread id, and thread ids collide across PID namespaces, so a ${what} cannot be shared between them; ` +
          'use a FileLock on a file both sides share instead',
      );
    case 'foreignOwner':
      return refused(
        path,
        `'${path}' is owned by ${userName(e.ownerUid ?? -1)}, not by this process's user (uid ${process.geteuid?.()}), ` +
          `who could hold it for ever or write its data; pass { allowForeignOwner: true } to share a ${what} ` +
          'between cooperating users',
        e.syscall,
      );
    case 'tooOpen':
      return refused(
        path,
        `'${path}' (owner ${userName(e.ownerUid ?? -1)}) has mode 0${(e.fileMode ?? 0).toString(8)}, writable by users ` +
          `that options.mode 0${(about.mode ?? 0o600).toString(8)} excludes; pass a mode that includes them if they may share it`,
        e.syscall,
      );
    case 'guardFull':
      return new LockError(
        'EMFILE',
        `EMFILE: too many shared regions mapped in this process to guard one more '${path}'; close some`,
        { errno: -E.EMFILE, syscall: e.syscall, path },
      );
    default: // 'incompatible'
      return incompatible(
        path,
        about.incompatible ??
          'was made by another version, libc or architecture, with another size, or is not a region',
      );
  }
}

const TABLE_FULL_MESSAGE = `the Web Locks table of this scope is full (at most 1024 requests and 256 threads at once)`;

export function incompatible(path: string, detail: string): LockError {
  return new LockError('ERR_INCOMPATIBLE_REGION', `ERR_INCOMPATIBLE_REGION: '${path}' ${detail}; it was not used`, {
    path,
  });
}

function refused(path: string, message: string, syscall?: string): LockError {
  return new LockError('EACCES', `EACCES: ${message}`, { errno: -E.EACCES, syscall, path });
}

function userName(uid: number): string {
  try {
    const line = readFileSync('/etc/passwd', 'latin1')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid));
    if (line !== undefined) return `uid ${uid} (${line.split(':')[0]})`;
  } catch {
    // no passwd file (a minimal container): the number alone
  }
  return `uid ${uid}`;
}

/** What the binding says about the filesystem of a refused lock file. */
export interface Filesystem {
  type: number;
  name: string | null;
}

/** ERR_UNSAFE_FILESYSTEM, naming the filesystem and the path. */
export function unsafeFilesystemError(fs: Filesystem, path: string): LockError {
  const type = `f_type 0x${fs.type.toString(16)}`;
  const err = new LockError(
    'ERR_UNSAFE_FILESYSTEM',
    `ERR_UNSAFE_FILESYSTEM: flock(2) may not exclude other holders on ${fs.name ?? 'this filesystem'} (${type}) ` +
      `'${path}'; keep lock files on a local filesystem, or pass allowUnsafeFilesystem: true`,
    { syscall: 'fstatfs', path },
  );
  return Object.assign(err, { filesystem: fs.name ?? type });
}

export function timeoutError(ms: number, path?: string, syscall = 'flock'): LockError {
  const err = systemError(-E.ETIMEDOUT, syscall, path);
  err.message = `ETIMEDOUT: lock not acquired within ${ms} ms${path === undefined ? '' : ` '${path}'`}`;
  return err;
}

/**
 * A sync wait that came back with neither a grant nor an error: its thread is
 * being torn down (process.exit(), terminate()), when no error can be thrown.
 */
export function teardownError(path?: string, syscall = 'flock'): LockError {
  return systemError(-E.ECANCELED, syscall, path);
}

export function deadlockError(path?: string): LockError {
  return new LockError(
    'EDEADLK',
    `EDEADLK: this thread already holds or waits for the lock${path === undefined ? '' : ` '${path}'`}; acquireSync would wait forever`,
    { errno: -E.EDEADLK, path },
  );
}

export function closedError(what: string): LockError {
  return new LockError('ERR_LOCK_CLOSED', `${what} is closed`);
}

/** Moves the stack captured at the call site onto an error made later. */
export function withStack<E>(err: E, site: Error | undefined): E {
  if (site !== undefined && err instanceof Error && site.stack !== undefined) {
    const header = site.stack.indexOf('\n');
    err.stack = `${err.name}: ${err.message}${header >= 0 ? site.stack.slice(header) : ''}`;
  }
  return err;
}
