// Errors a user can act on: system errors shaped like Node's fs errors
// (code, errno, syscall, path), and argument errors with Node's codes.
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

export interface LockErrorFields {
  errno?: number;
  syscall?: string;
  path?: string;
  cause?: unknown;
}

export class LockError extends Error {
  readonly code: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;

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
// Robust mutexes return these, and neither libuv nor os.constants names them.
const robustErrors = new Map<number, [string, string]>([
  [-130, ['EOWNERDEAD', 'owner died']],
  [-131, ['ENOTRECOVERABLE', 'state not recoverable']],
]);

// libuv's map lacks errnos no uv call returns (EDEADLK, EIDRM, …); their
// names still come from the OS constants, never as UNKNOWN.
function describeErrno(errno: number): [string, string] {
  const known = systemErrors.get(errno) ?? robustErrors.get(errno);
  if (known !== undefined) return known;
  const name = Object.entries(osConstants.errno).find(([, value]) => value === -errno)?.[0];
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

const ETIMEDOUT = -110;

/** Errors thrown by the binding carry a negative errno and the syscall. */
export function fromNative(err: unknown, path?: string, timeoutMs?: number): unknown {
  if (err instanceof Error && typeof (err as { errno?: unknown }).errno === 'number') {
    const { errno, syscall } = err as Error & { errno: number; syscall?: string };
    if (errno === ETIMEDOUT && timeoutMs !== undefined) return timeoutError(timeoutMs, path, syscall);
    return systemError(errno, syscall, path);
  }
  return err;
}

export function timeoutError(ms: number, path?: string, syscall = 'flock'): LockError {
  const err = systemError(ETIMEDOUT, syscall, path);
  err.message = `ETIMEDOUT: lock not acquired within ${ms} ms${path === undefined ? '' : ` '${path}'`}`;
  return err;
}

/**
 * A sync wait that came back with neither a grant nor an error: its thread is
 * being torn down (process.exit(), terminate()), when no error can be thrown.
 */
export function teardownError(path?: string, syscall = 'flock'): LockError {
  return systemError(-125, syscall, path); // ECANCELED
}

export function deadlockError(path?: string): LockError {
  return new LockError(
    'EDEADLK',
    `EDEADLK: this thread already holds or waits for the lock${path === undefined ? '' : ` '${path}'`}; acquireSync would wait forever`,
    { errno: -35, path },
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
