// SharedMutex: a robust process-shared pthread mutex in a named /dev/shm
// region, with shared bytes (`data`) and owner-death reporting.
import { constants as bufferConstants } from 'node:buffer';
import { unlinkSync } from 'node:fs';
import { fromNative, incompatible, systemError, teardownError } from './errors';
import { GrantHandle, makeHandle, notThenable } from './handle';
import {
  type Grant,
  type NativeError,
  type NativeSharedMutex,
  native,
  type RegionInfo,
  type WaitCallback,
} from './native';
import type { Backend } from './queue';
import { QueuedLock, QueueTable } from './queued-lock';
import { regionPath, validateName } from './region';
import { invalidValue, validateBoolean, validateInteger, validateMode, validateObject } from './validate';

/** The options of `new SharedMutex()`. */
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

/** How a SharedMutex's `acquire()` and `run()` wait. */
export interface MutexAcquireOptions {
  /** Milliseconds to wait before rejecting with ETIMEDOUT. */
  timeout?: number;
  /** Stops the wait with an AbortError whose `cause` is the signal's reason. */
  signal?: AbortSignal;
}

/** A held SharedMutex: `token` and `ownerDied` (see GrantHandle). */
export class MutexHandle extends GrantHandle {}
notThenable(MutexHandle);

const MAX_DATA = bufferConstants.MAX_LENGTH;

function convert(err: unknown, path: string, timeoutMs?: number, mode?: number): unknown {
  return fromNative(err, path, timeoutMs, { what: 'SharedMutex', mode });
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

  lockAsync(_shared: boolean, done: WaitCallback<Grant>) {
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

  waitError(error: NativeError): unknown {
    return convert(error, this.path);
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

// One queue (and one mapping) per name on this thread.
const table = new QueueTable<Grant, MutexHandle, boolean, MutexBackend>((owner, _shared, grant) =>
  makeHandle(MutexHandle, owner, false, grant),
);

/**
 * A robust process-shared mutex in the region /dev/shm/<name>, with bytes
 * of shared data beside it: one holder at a time across every process and
 * worker that opens the name, and `ownerDied` for the next holder when one
 * dies holding it.
 */
export class SharedMutex extends QueuedLock<
  Grant,
  MutexHandle,
  boolean,
  MutexAcquireOptions,
  {
    /** Milliseconds to block before throwing ETIMEDOUT. */
    timeout?: number;
  },
  undefined
> {
  /** The region's name, under /dev/shm. */
  readonly name: string;
  readonly #backend: MutexBackend;

  /**
   * Opens (creating if needed) the region /dev/shm/<name>. Every process and
   * worker that opens the same name shares the mutex and `data`.
   */
  constructor(name: string, options?: SharedMutexOptions) {
    const valid = validateName(name);
    const opts = validateObject(options, 'options');
    const dataSize = opts.dataSize === undefined ? 0 : validateInteger(opts.dataSize, 'options.dataSize', 0, MAX_DATA);
    const mode = validateMode(opts.mode, 'options.mode', 0o600);
    const allowForeignOwner = validateBoolean(opts.allowForeignOwner, 'options.allowForeignOwner', false);
    const entry = table.open(
      valid,
      () => new MutexBackend(valid, dataSize, mode, allowForeignOwner),
      (backend) => {
        if (backend.dataSize !== dataSize) {
          throw incompatible(regionPath(valid), `is open with dataSize ${backend.dataSize}, not ${dataSize}`);
        }
      },
    );
    super(entry.queue);
    this.name = valid;
    this.#backend = entry.backend;
  }

  protected label(): string {
    return `SharedMutex '${this.name}'`;
  }

  protected mode(opts: Record<string, unknown> | undefined): boolean {
    if (opts?.shared !== undefined && opts.shared !== false) {
      throw invalidValue('options.shared', opts.shared, 'is not supported by SharedMutex (exclusive only)');
    }
    return false;
  }

  /** The shared bytes: the same memory in every process and worker. */
  get data(): Buffer {
    this.open();
    return this.#backend.data();
  }

  /** Header fields (token, dirty flag, holder) without taking the mutex. */
  info(): RegionInfo {
    this.open();
    return this.#backend.info();
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
