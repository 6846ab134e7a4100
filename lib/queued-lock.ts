// What every lock kind shares above its Backend: the per-thread table of
// queues (one per lock per thread, counted by instance) and the methods that
// only pass through to the queue (run, runSync, close). A kind supplies its
// backend and reads its options into a request mode. Semaphore is built on
// this; FileLock and SharedMutex still carry their own copies of the same
// code (their queueFor, #open, run/runSync/close) and should move onto it.
import { closedError } from './errors';
import { type LockHandle, runHeld, runHeldSync } from './handle';
import { type Backend, LockQueue, type MakeHandle } from './queue';
import { validateFunction } from './validate';

export interface QueueEntry<G, H extends LockHandle, M, B extends Backend<G, M>> {
  readonly queue: LockQueue<G, H, M>;
  readonly backend: B;
}

/** Locks by key on this thread (each worker loads its own copy of a module). */
export class QueueTable<G, H extends LockHandle, M, B extends Backend<G, M>> {
  readonly #entries = new Map<string, QueueEntry<G, H, M, B>>();
  readonly #makeHandle: MakeHandle<G, H, M>;

  constructor(makeHandle: MakeHandle<G, H, M>) {
    this.#makeHandle = makeHandle;
  }

  /** The key's queue, made with `make` if new; `check` vets an existing one. */
  open(key: string, make: () => B, check: (backend: B) => void): QueueEntry<G, H, M, B> {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      const backend = make();
      const queue: LockQueue<G, H, M> = new LockQueue(backend, this.#makeHandle, () => {
        if (this.#entries.get(key)?.queue === queue) this.#entries.delete(key);
      });
      entry = { queue, backend };
      this.#entries.set(key, entry);
    } else {
      check(entry.backend);
    }
    entry.queue.refs++;
    return entry;
  }
}

export abstract class QueuedLock<G, H extends LockHandle, M, A, S> {
  #queue: LockQueue<G, H, M> | undefined;

  protected constructor(queue: LockQueue<G, H, M>) {
    this.#queue = queue;
  }

  /** The lock as errors name it, e.g. "Semaphore 'jobs'". */
  protected abstract label(): string;

  abstract acquire(options?: A): Promise<H>;
  abstract acquireSync(options?: S): H;

  protected open(): LockQueue<G, H, M> {
    if (this.#queue === undefined) throw closedError(this.label());
    return this.#queue;
  }

  /** `caller` is cut from the stack kept for errors that surface later. */
  protected enqueue(
    mode: M,
    timeout: number,
    signal: AbortSignal | undefined,
    caller: (...args: never[]) => unknown,
  ): Promise<H> {
    if (this.#queue === undefined) return Promise.reject(closedError(this.label()));
    return this.#queue.acquire(this, mode, timeout, signal, caller);
  }

  /** Acquires, runs `fn` with the handle, and always releases. */
  run<T>(fn: (handle: H) => T | Promise<T>, options?: A): Promise<T> {
    validateFunction(fn, 'fn');
    return runHeld(this.acquire(options), fn);
  }

  runSync<T>(fn: (handle: H) => T, options?: S): T {
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
