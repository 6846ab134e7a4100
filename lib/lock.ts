// The shape every lock kind shares, so code can take any of them: FileLock,
// SharedMutex, Semaphore, RedisLock, PgLock. (Not `Lock`: that is the Web
// Locks API's granted-lock object, exported beside it.)
import type { FileLock } from './file-lock';
import type { Semaphore } from './semaphore';
import type { SharedMutex } from './shared-mutex';

/**
 * What every lock kind offers, local or remote, so code (a job runner, a
 * cache) can take whichever lock its caller chose. `H` is the kind's handle.
 */
export interface Lockable<H = unknown> {
  /** Waits for the lock (up to `timeout` ms, until `signal` aborts) and resolves with its handle. */
  acquire(options?: { timeout?: number; signal?: AbortSignal }): Promise<H>;
  /** Acquires, awaits `fn(handle)`, and releases whatever `fn` does; resolves with its result. */
  run<T>(fn: (handle: H) => T | Promise<T>, options?: { timeout?: number; signal?: AbortSignal }): Promise<T>;
}

// Compile-time proof that the local kinds fit (each remote kind checks
// itself in its own module, which the main entry does not load).
true satisfies [FileLock, SharedMutex, Semaphore] extends [Lockable, Lockable, Lockable] ? true : never;
