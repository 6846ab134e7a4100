// The shape every lock kind shares, so code can take any of them: FileLock,
// SharedMutex, Semaphore, RedisLock, PgLock. (Not `Lock`: that is the Web
// Locks API's granted-lock object, exported beside it.)
import type { FileLock } from './file-lock';
import type { Semaphore } from './semaphore';
import type { SharedMutex } from './shared-mutex';

export interface Lockable<H = unknown> {
  acquire(options?: { timeout?: number; signal?: AbortSignal }): Promise<H>;
  run<T>(fn: (handle: H) => T | Promise<T>, options?: { timeout?: number; signal?: AbortSignal }): Promise<T>;
}

// Compile-time proof that the local kinds fit (each remote kind checks
// itself in its own module, which the main entry does not load).
true satisfies [FileLock, SharedMutex, Semaphore] extends [Lockable, Lockable, Lockable] ? true : never;
