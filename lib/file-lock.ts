// FileLock: flock(2) on a lock file, exclusive across processes, worker
// threads and async tasks.
import { resolve } from 'node:path';
import { closedError, fromNative, systemError, teardownError } from './errors';
import { LockHandle, runHeld, runHeldSync } from './handle';
import { type NativeLockFile, native } from './native';
import { type Backend, LockQueue } from './queue';
import {
  validateBoolean,
  validateFunction,
  validateMode,
  validateObject,
  validatePath,
  validateSignal,
  validateTimeout,
} from './validate';

export interface FileLockOptions {
  /** Permission bits if the file is created. Default 0o600. */
  mode?: number;
  /** Create the lock file if missing. Default true. */
  create?: boolean;
}

export interface AcquireOptions {
  shared?: boolean;
  /** Milliseconds to wait before rejecting with ETIMEDOUT. */
  timeout?: number;
  signal?: AbortSignal;
}

export interface AcquireSyncOptions {
  shared?: boolean;
  timeout?: number;
}

class FileBackend implements Backend<true> {
  readonly path: string;
  readonly waitSyscall = 'flock';
  readonly #file: NativeLockFile;
  readonly #slot: number;

  constructor(path: string, mode: number, create: boolean) {
    this.path = path;
    this.#file = new native.LockFile(path, mode, create);
    this.#slot = this.#file.slot;
  }

  tryLock(shared: boolean): true | null {
    try {
      return native.fileTryLock(this.#slot, shared) ? true : null;
    } catch (err) {
      throw fromNative(err, this.path);
    }
  }

  lockSync(shared: boolean, timeoutMs: number): true {
    try {
      // The slot call first: uncontended, it is the whole job, without the
      // object method's napi_unwrap.
      if (native.fileTryLock(this.#slot, shared)) return true;
      if (this.#file.lockSync(shared, timeoutMs) !== true) throw teardownError(this.path);
      return true;
    } catch (err) {
      throw fromNative(err, this.path, timeoutMs);
    }
  }

  lockAsync(shared: boolean, done: (errno: number, syscall: string | undefined, grant: true | undefined) => void) {
    try {
      return this.#file.lockAsync(shared, (errno, syscall) => done(errno, syscall, errno === 0 ? true : undefined));
    } catch (err) {
      throw fromNative(err, this.path);
    }
  }

  unlock(): void {
    try {
      native.fileUnlock(this.#slot);
    } catch (err) {
      throw fromNative(err, this.path);
    }
  }

  close(): void {
    this.#file.close();
  }

  waitError(errno: number, syscall: string | undefined): unknown {
    return systemError(errno, syscall, this.path);
  }
}

// One queue per resolved path on this thread (each worker loads its own copy
// of this module, so this map is naturally per thread).
const queues = new Map<string, LockQueue<true, LockHandle>>();

function queueFor(path: string, mode: number, create: boolean): LockQueue<true, LockHandle> {
  let queue = queues.get(path);
  if (queue === undefined) {
    const created = new LockQueue<true, LockHandle>(
      new FileBackend(path, mode, create),
      (owner, shared) => new LockHandle(owner, shared),
      () => {
        if (queues.get(path) === created) queues.delete(path);
      },
    );
    queues.set(path, created);
    queue = created;
  }
  queue.refs++;
  return queue;
}

export class FileLock {
  /** The absolute path of the lock file. */
  readonly path: string;
  #queue: LockQueue<true, LockHandle> | undefined;

  /**
   * A lock on `path`. Nothing is opened until the first acquisition. All
   * FileLocks of one thread on one path share one fd and one queue; the
   * options of the first one opened apply.
   */
  constructor(path: string | Buffer | URL, options?: FileLockOptions) {
    const p = validatePath(path, 'path');
    const opts = validateObject(options, 'options');
    const mode = validateMode(opts.mode, 'options.mode', 0o600);
    const create = validateBoolean(opts.create, 'options.create', true);
    this.path = resolve(p);
    this.#queue = queueFor(this.path, mode, create);
  }

  #open(): LockQueue<true, LockHandle> {
    if (this.#queue === undefined) throw closedError(`FileLock '${this.path}'`);
    return this.#queue;
  }

  /** Waits for the lock without blocking the event loop. */
  acquire(options?: AcquireOptions): Promise<LockHandle> {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const shared = validateBoolean(opts?.shared, 'options.shared', false);
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    const signal = validateSignal(opts?.signal, 'options.signal');
    if (this.#queue === undefined) return Promise.reject(closedError(`FileLock '${this.path}'`));
    return this.#queue.acquire(this, shared, timeout, signal, this.acquire);
  }

  /** The lock if it is free now, else null. Never waits. */
  tryAcquire(options?: { shared?: boolean }): LockHandle | null {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const shared = validateBoolean(opts?.shared, 'options.shared', false);
    return this.#open().tryAcquire(this, shared);
  }

  /**
   * Blocks this thread until the lock is granted, like fs.*Sync. Throws
   * EDEADLK if this thread already holds or waits for it. In a Worker, give
   * a timeout: terminate() cannot interrupt a thread blocked in native code.
   */
  acquireSync(options?: AcquireSyncOptions): LockHandle {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const shared = validateBoolean(opts?.shared, 'options.shared', false);
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    return this.#open().acquireSync(this, shared, timeout);
  }

  /** Acquires, runs `fn` with the handle, and always releases. */
  run<T>(fn: (handle: LockHandle) => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    validateFunction(fn, 'fn');
    return runHeld(this.acquire(options), fn);
  }

  runSync<T>(fn: (handle: LockHandle) => T, options?: AcquireSyncOptions): T {
    validateFunction(fn, 'fn');
    return runHeldSync(this.acquireSync(options), fn);
  }

  /** Releases what this instance holds and rejects what it waits for. */
  close(): void {
    const queue = this.#queue;
    if (queue === undefined) return;
    this.#queue = undefined;
    queue.closeOwner(this);
  }

  get closed(): boolean {
    return this.#queue === undefined;
  }
}
