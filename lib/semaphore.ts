// Semaphore: at most `permits` permits held at once by every process and
// worker that opens a name; permits of a holder that dies come back at once.
import { fromNative, incompatible, teardownError } from './errors';
import { GrantHandle, makeHandle, notThenable } from './handle';
import {
  type NativeError,
  type NativeSemaphore,
  native,
  type SemaphoreGrant,
  type SemaphoreInfo,
  type WaitCallback,
} from './native';
import type { Backend } from './queue';
import { QueuedLock, QueueTable } from './queued-lock';
import { regionPath, validateName } from './region';
import { validateInteger, validateMode, validateObject } from './validate';

const MAX_PERMITS = 32767; // SEMVMX: the largest value of a System V semaphore

/** The options of `new Semaphore()`. */
export interface SemaphoreOptions {
  /** How many permits exist (1 to 32767); every opener must agree. */
  permits: number;
  /** Permission bits if the region and its semaphore set are created. Default 0o600. */
  mode?: number;
}

/** How a Semaphore's `acquire()` and `run()` take permits and wait. */
export interface SemaphoreAcquireOptions {
  /** Permits to take at once, 1 to `permits`. Default 1. */
  weight?: number;
  /** Milliseconds to wait before rejecting with ETIMEDOUT. */
  timeout?: number;
  /** Stops the wait with an AbortError whose `cause` is the signal's reason. */
  signal?: AbortSignal;
}

/**
 * A held grant of `weight` permits; `token` and `ownerDied` (a holder died or
 * was torn down while holding permits since the last report) as GrantHandle.
 */
export class SemaphoreHandle extends GrantHandle {
  /** Permits this handle holds. */
  declare readonly weight: number;
}
notThenable(SemaphoreHandle);

class SemaphoreBackend implements Backend<SemaphoreGrant, number> {
  readonly path: string;
  readonly waitSyscall = 'semop';
  readonly perRequest = true;
  readonly permits: number;
  readonly #sem: NativeSemaphore;

  constructor(name: string, permits: number, mode: number) {
    this.path = regionPath(name);
    this.permits = permits;
    this.#sem = this.#call(() => new native.Semaphore(name, permits, mode));
  }

  #call<T>(fn: () => T, timeoutMs?: number): T {
    try {
      return fn();
    } catch (err) {
      throw this.#convert(err, timeoutMs);
    }
  }

  #convert(err: unknown, timeoutMs?: number): unknown {
    return fromNative(err, this.path, timeoutMs, {
      what: 'Semaphore',
      incompatible:
        'is not a Semaphore with this many permits, was made by another version, libc or architecture, ' +
        'names a semaphore set this IPC namespace does not have, or was damaged',
    });
  }

  tryLock(weight: number): SemaphoreGrant | null {
    return this.#call(() => this.#sem.tryLock(weight));
  }

  lockSync(weight: number, timeoutMs: number): SemaphoreGrant {
    const grant = this.#call(() => this.#sem.lockSync(weight, timeoutMs), timeoutMs);
    if (grant === undefined) throw teardownError(this.path, 'semop');
    return grant;
  }

  lockAsync(weight: number, done: WaitCallback<SemaphoreGrant>) {
    return this.#call(() => this.#sem.lockAsync(weight, done));
  }

  unlock(grant: SemaphoreGrant): void {
    this.#call(() => this.#sem.unlock(grant[1]));
  }

  close(): void {
    this.#sem.close();
  }

  waitError(error: NativeError): unknown {
    return this.#convert(error);
  }

  info(): SemaphoreInfo {
    return this.#call(() => this.#sem.info());
  }
}

const table = new QueueTable<SemaphoreGrant, SemaphoreHandle, number, SemaphoreBackend>((owner, weight, grant) => {
  const handle = makeHandle(SemaphoreHandle, owner, false, grant[0]);
  handle.weight = weight;
  return handle;
});

/**
 * A request takes `weight` permits (default 1). tryAcquire gives null while a
 * heavier request waits; acquireSync throws EDEADLK if this thread waits for
 * the semaphore, or holds so many permits that `weight` could never be free.
 */
export class Semaphore extends QueuedLock<
  SemaphoreGrant,
  SemaphoreHandle,
  number,
  SemaphoreAcquireOptions,
  {
    /** Permits to take at once, 1 to `permits`. Default 1. */
    weight?: number;
    /** Milliseconds to block before throwing ETIMEDOUT. */
    timeout?: number;
  },
  {
    /** Permits to take at once, 1 to `permits`. Default 1. */
    weight?: number;
  }
> {
  /** The semaphore's name, under /dev/shm. */
  readonly name: string;
  /** How many permits exist. */
  readonly permits: number;
  readonly #backend: SemaphoreBackend;

  /** Opens (creating if needed) the semaphore `name` with `permits` permits. */
  constructor(name: string, options: SemaphoreOptions) {
    const valid = validateName(name);
    const opts = validateObject(options, 'options');
    const permits = validateInteger(opts.permits, 'options.permits', 1, MAX_PERMITS);
    const mode = validateMode(opts.mode, 'options.mode', 0o600);
    const entry = table.open(
      valid,
      () => new SemaphoreBackend(valid, permits, mode),
      (backend) => {
        if (backend.permits !== permits) {
          throw incompatible(regionPath(valid), `is open with permits ${backend.permits}, not ${permits}`);
        }
      },
    );
    super(entry.queue);
    this.name = valid;
    this.permits = permits;
    this.#backend = entry.backend;
  }

  protected label(): string {
    return `Semaphore '${this.name}'`;
  }

  protected mode(opts: Record<string, unknown> | undefined): number {
    if (opts?.weight === undefined) return 1;
    return validateInteger(opts.weight, 'options.weight', 1, this.permits);
  }

  /** Permits, free permits (the kernel's count) and the live holders. */
  info(): SemaphoreInfo {
    this.open();
    return this.#backend.info();
  }

  /**
   * Removes the name and its semaphore set. Waiters anywhere then fail with
   * EIDRM, and releases by current holders give back nothing.
   */
  static unlink(name: string): void {
    const path = regionPath(validateName(name));
    try {
      native.unlinkSemaphore(name);
    } catch (err) {
      throw fromNative(err, path);
    }
  }
}
