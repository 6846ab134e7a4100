// flock(fd) for code that already owns an fd (e.g. moving off fs-ext). The
// same waiting rules as FileLock (dedicated thread, cancellable), but no
// per-thread queue: the caller owns the fd and its semantics.
import { AbortError, fromNative, teardownError, timeoutError, withStack } from './errors';
import { ECANCELED, native } from './native';
import {
  invalidValue,
  validateBoolean,
  validateInteger,
  validateObject,
  validateSignal,
  validateTimeout,
} from './validate';

/** flock(2)'s `LOCK_EX`, `LOCK_SH` and `LOCK_UN`. */
export type FlockOperation = 'ex' | 'sh' | 'un';

/** How {@link flock} and {@link flockSync} wait. */
export interface FlockOptions {
  /** Do not wait: resolve false when another holder has the lock. */
  nonblocking?: boolean;
  /** Milliseconds to wait before failing with `ETIMEDOUT` (omitted or `Infinity`: no limit; at most 2^31-1). */
  timeout?: number;
  /** Stops the wait with an `AbortError` whose `cause` is the signal's reason. */
  signal?: AbortSignal;
}

function operation(op: unknown): number {
  if (op === 'ex') return native.LOCK_EX;
  if (op === 'sh') return native.LOCK_SH;
  if (op === 'un') return native.LOCK_UN;
  throw invalidValue('op', op, "must be one of 'ex', 'sh' or 'un'");
}

function parse(fd: unknown, op: unknown, options: unknown) {
  validateInteger(fd, 'fd', 0, 2 ** 31 - 1);
  const code = operation(op);
  const opts = validateObject(options, 'options');
  const nonblocking = validateBoolean(opts.nonblocking, 'options.nonblocking', false);
  const timeout = validateTimeout(opts.timeout, 'options.timeout');
  return { fd: fd as number, code, nonblocking, timeout, opts };
}

/** flock on this thread; no answer means the thread is being torn down, not a grant. */
function flockHere(fd: number, op: number, timeoutMs: number): boolean {
  const locked = native.flockSync(fd, op, timeoutMs);
  if (locked === undefined) throw teardownError();
  return locked;
}

/**
 * flock(2) on an fd the caller owns, waiting on this thread (like `fs.*Sync`).
 * The lock belongs to the fd's open file description: threads sharing the
 * fd are one owner. Returns false only for a nonblocking miss.
 */
export function flockSync(fd: number, op: FlockOperation, options?: Omit<FlockOptions, 'signal'>): boolean {
  const p = parse(fd, op, options);
  const code = p.nonblocking && p.code !== native.LOCK_UN ? p.code | native.LOCK_NB : p.code;
  try {
    return flockHere(p.fd, code, p.timeout);
  } catch (err) {
    throw fromNative(err, undefined, p.timeout);
  }
}

/**
 * flock(2) on an fd the caller owns, waiting on a dedicated native thread
 * (never libuv's pool) so the event loop runs on; resolves true once granted,
 * false only for a nonblocking miss. If the signal or timeout fires in the same
 * instant the kernel grants the lock, the grant wins and this resolves true:
 * unlocking it could drop a lock the fd held before (flock converts in place).
 */
export function flock(fd: number, op: FlockOperation, options?: FlockOptions): Promise<boolean> {
  const p = parse(fd, op, options);
  const signal = validateSignal(p.opts.signal, 'options.signal');
  if (signal?.aborted) return Promise.reject(new AbortError(signal.reason));
  try {
    if (p.code === native.LOCK_UN) return Promise.resolve(flockHere(p.fd, p.code, -1));
    const now = flockHere(p.fd, p.code | native.LOCK_NB, -1);
    if (now || p.nonblocking) return Promise.resolve(now);
  } catch (err) {
    return Promise.reject(fromNative(err));
  }
  const site = new Error();
  Error.captureStackTrace(site, flock);
  return new Promise<boolean>((resolve, reject) => {
    let reason: Error | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = (err: Error) => {
      reason ??= err;
      wait.cancel();
    };
    const onAbort = () => stop(new AbortError(signal?.reason));
    const wait = native.flockAsync(p.fd, p.code, (error) => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error === null) resolve(true);
      else if (error.errno === ECANCELED && reason !== undefined) reject(withStack(reason, site));
      else reject(withStack(fromNative(error), site));
    });
    if (p.timeout >= 0) timer = setTimeout(() => stop(timeoutError(p.timeout)), p.timeout);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
