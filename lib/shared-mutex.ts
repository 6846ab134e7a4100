// SharedMutex: a robust process-shared pthread mutex in a named /dev/shm
// region, with shared bytes (`data`) and owner-death reporting.
import { constants as bufferConstants } from 'node:buffer';
import { unlinkSync } from 'node:fs';
import { closedError, systemError, teardownError } from './errors';
import { type HandleOwner, LockHandle, runHeld, runHeldSync } from './handle';
import { type Grant, type NativeSharedMutex, native, type RegionInfo } from './native';
import { type Backend, LockQueue } from './queue';
import { incompatible, regionError, regionPath, validateName } from './region';
import {
  invalidValue,
  validateBoolean,
  validateFunction,
  validateInteger,
  validateMode,
  validateObject,
  validateSignal,
  validateTimeout,
} from './validate';

export interface SharedMutexOptions {
  /** Bytes of shared data after the header, exposed as `data`. Default 0. */
  dataSize?: number;
  /**
   * Permission bits if the region is created. Default 0o600. Also the most an
   * existing region may allow: one writable by users this mode excludes is
   * refused (EACCES).
   */
  mode?: number;
  /**
   * Use a region owned by another user (cooperating users, each passing a
   * `mode` that includes the others). Default false: such a region is refused
   * with EACCES, since its owner could hold the mutex for ever or write `data`.
   */
  allowForeignOwner?: boolean;
}

export interface MutexAcquireOptions {
  timeout?: number;
  signal?: AbortSignal;
}

/** A held SharedMutex. */
export class MutexHandle extends LockHandle {
  /**
   * The previous holder died or was torn down while holding: the shared
   * state it guarded may be half-updated and needs repair.
   */
  readonly ownerDied: boolean;
  private readonly _grant: Grant;

  constructor(owner: HandleOwner, grant: Grant) {
    super(owner, false);
    this._grant = grant;
    this.ownerDied = typeof grant === 'bigint' ? (grant & 1n) === 1n : grant % 2 === 1;
  }

  /** Fencing token (64-bit): strictly increasing across all acquisitions of the region. */
  get token(): bigint {
    return typeof this._grant === 'bigint' ? this._grant >> 1n : BigInt(Math.floor(this._grant / 2));
  }
}

const MAX_DATA = bufferConstants.MAX_LENGTH;

function convert(err: unknown, path: string, timeoutMs?: number, mode?: number): unknown {
  return regionError(err, path, 'SharedMutex', timeoutMs, mode);
}

class MutexBackend implements Backend<Grant> {
  readonly path: string;
  readonly waitSyscall = 'pthread_mutex_lock';
  readonly dataSize: number;
  readonly #mutex: NativeSharedMutex;
  readonly #slot: number;
  #data: Buffer | undefined;

  constructor(name: string, dataSize: number, mode: number, allowForeignOwner: boolean) {
    this.path = regionPath(name);
    this.dataSize = dataSize;
    try {
      this.#mutex = new native.SharedMutex(name, dataSize, mode, allowForeignOwner);
    } catch (err) {
      throw convert(err, this.path, undefined, mode);
    }
    this.#slot = this.#mutex.slot;
  }

  tryLock(): Grant | null {
    try {
      const grant = native.mutexTryLock(this.#slot);
      return grant === 0 ? null : grant;
    } catch (err) {
      throw convert(err, this.path);
    }
  }

  lockSync(_shared: boolean, timeoutMs: number): Grant {
    try {
      const grant = native.mutexLockSync(this.#slot, timeoutMs);
      if (grant === undefined) throw teardownError(this.path, 'pthread_mutex_lock');
      return grant;
    } catch (err) {
      throw convert(err, this.path, timeoutMs);
    }
  }

  lockAsync(_shared: boolean, done: (errno: number, syscall: string | undefined, grant: Grant | undefined) => void) {
    try {
      return this.#mutex.lockAsync(done);
    } catch (err) {
      throw convert(err, this.path);
    }
  }

  unlock(): void {
    try {
      native.mutexUnlock(this.#slot);
    } catch (err) {
      throw convert(err, this.path);
    }
  }

  close(): void {
    this.#mutex.close();
    this.#data = undefined;
  }

  waitError(errno: number, syscall: string | undefined): unknown {
    return convert(Object.assign(new Error(), { errno, syscall }), this.path);
  }

  data(): Buffer {
    if (this.#data === undefined) {
      try {
        this.#data = Buffer.from(this.#mutex.data());
      } catch (err) {
        throw convert(err, this.path);
      }
    }
    return this.#data;
  }

  info(): RegionInfo {
    return this.#mutex.info();
  }
}

type MutexQueue = LockQueue<Grant, MutexHandle> & { backend: MutexBackend };

// One queue (and one mapping) per name on this thread.
const queues = new Map<string, MutexQueue>();

function queueFor(name: string, dataSize: number, mode: number, allowForeignOwner: boolean): MutexQueue {
  let queue = queues.get(name);
  if (queue === undefined) {
    const backend = new MutexBackend(name, dataSize, mode, allowForeignOwner);
    const created = new LockQueue<Grant, MutexHandle>(
      backend,
      (owner, _shared, grant) => new MutexHandle(owner, grant),
      () => {
        if (queues.get(name) === created) queues.delete(name);
      },
    ) as MutexQueue;
    created.backend = backend;
    queues.set(name, created);
    queue = created;
  } else if (queue.backend.dataSize !== dataSize) {
    throw incompatible(regionPath(name), `is open with dataSize ${queue.backend.dataSize}, not ${dataSize}`);
  }
  queue.refs++;
  return queue;
}

export class SharedMutex {
  readonly name: string;
  #queue: MutexQueue | undefined;

  /**
   * Opens (creating if needed) the region /dev/shm/<name>. Every process and
   * worker that opens the same name shares the mutex and `data`.
   */
  constructor(name: string, options?: SharedMutexOptions) {
    this.name = validateName(name);
    const opts = validateObject(options, 'options');
    const dataSize = opts.dataSize === undefined ? 0 : validateInteger(opts.dataSize, 'options.dataSize', 0, MAX_DATA);
    const mode = validateMode(opts.mode, 'options.mode', 0o600);
    const allowForeignOwner = validateBoolean(opts.allowForeignOwner, 'options.allowForeignOwner', false);
    this.#queue = queueFor(this.name, dataSize, mode, allowForeignOwner);
  }

  #open(): MutexQueue {
    if (this.#queue === undefined) throw closedError(`SharedMutex '${this.name}'`);
    return this.#queue;
  }

  /** The shared bytes: the same memory in every process and worker. */
  get data(): Buffer {
    return this.#open().backend.data();
  }

  acquire(options?: MutexAcquireOptions): Promise<MutexHandle> {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    const signal = validateSignal(opts?.signal, 'options.signal');
    if (opts !== undefined && 'shared' in opts && opts.shared !== undefined && opts.shared !== false) {
      throw invalidValue('options.shared', opts.shared, 'is not supported by SharedMutex (exclusive only)');
    }
    if (this.#queue === undefined) return Promise.reject(closedError(`SharedMutex '${this.name}'`));
    return this.#queue.acquire(this, false, timeout, signal, this.acquire);
  }

  tryAcquire(): MutexHandle | null {
    return this.#open().tryAcquire(this, false);
  }

  /** Blocks this thread; EDEADLK if this thread holds or waits for it. */
  acquireSync(options?: { timeout?: number }): MutexHandle {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    return this.#open().acquireSync(this, false, timeout);
  }

  /** Acquires, runs `fn` with the handle, and always releases. */
  run<T>(fn: (handle: MutexHandle) => T | Promise<T>, options?: MutexAcquireOptions): Promise<T> {
    validateFunction(fn, 'fn');
    return runHeld(this.acquire(options), fn);
  }

  runSync<T>(fn: (handle: MutexHandle) => T, options?: { timeout?: number }): T {
    validateFunction(fn, 'fn');
    return runHeldSync(this.acquireSync(options), fn);
  }

  /** Header fields (token, dirty flag, holder) without taking the mutex. */
  info(): RegionInfo {
    return this.#open().backend.info();
  }

  /** Releases what this instance holds; unmaps when no instance of this thread uses the name. */
  close(): void {
    const queue = this.#queue;
    if (queue === undefined) return;
    this.#queue = undefined;
    queue.closeOwner(this);
  }

  get closed(): boolean {
    return this.#queue === undefined;
  }

  /** Removes the region's name; processes that have it mapped keep using it. */
  static unlink(name: string): void {
    const path = regionPath(validateName(name));
    try {
      unlinkSync(path);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw typeof e.errno === 'number' ? systemError(e.errno, 'unlink', path) : err;
    }
  }

  /** The header of region `name`, read without mapping or locking it. */
  static inspect(name: string): RegionInfo {
    const path = regionPath(validateName(name));
    try {
      return native.inspectRegion(name);
    } catch (err) {
      throw convert(err, path);
    }
  }
}
