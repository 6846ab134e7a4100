// What every local lock kind shares above its Backend: the per-thread table of
// queues (one per lock per thread, counted by instance), the option checks
// common to acquire/tryAcquire/acquireSync, and the methods that only pass
// through to the queue (run, runSync, close). A kind supplies its backend,
// reads its own options into a request mode, and names itself for errors.
import { closedError } from './errors';
import { type LockHandle, runHeld, runHeldSync } from './handle';
import { type Backend, LockQueue, type MakeHandle } from './queue';
import { validateFunction, validateObject, validateSignal, validateTimeout } from './validate';

export interface QueueEntry<G, H extends LockHandle, M, B extends Backend<G, M>> {
  readonly queue: LockQueue<G, H, M>;
  readonly backend: B;
  /** Every key that finds this entry (a FileLock's paths and its file identity). */
  readonly keys: string[];
}

/** Locks by key on this thread (each worker loads its own copy of a module). */
export class QueueTable<G, H extends LockHandle, M, B extends Backend<G, M>> {
  readonly #entries = new Map<string, QueueEntry<G, H, M, B>>();
  readonly #makeHandle: MakeHandle<G, H, M>;

  constructor(makeHandle: MakeHandle<G, H, M>) {
    this.#makeHandle = makeHandle;
  }

  /** The key's entry if this thread has it open, counting one more user. */
  join(key: string): QueueEntry<G, H, M, B> | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined) entry.queue.refs++;
    return entry;
  }

  /**
   * The key's entry, counting one more user: made with `make` if new, else
   * `existing` vets the backend already open (and may throw).
   */
  open(key: string, make: () => B, existing: (backend: B) => void): QueueEntry<G, H, M, B> {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      const backend = make();
      const queue: LockQueue<G, H, M> = new LockQueue(backend, this.#makeHandle, () => {
        for (const k of made.keys) if (this.#entries.get(k) === made) this.#entries.delete(k);
      });
      const made: QueueEntry<G, H, M, B> = { queue, backend, keys: [key] };
      this.#entries.set(key, made);
      entry = made;
    } else {
      existing(entry.backend);
    }
    entry.queue.refs++;
    return entry;
  }

  /** The key's entry, if any, counting no user. */
  peek(key: string): QueueEntry<G, H, M, B> | undefined {
    return this.#entries.get(key);
  }

  /** Drops one key of an entry (which stays open under its other keys). */
  forget(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    entry.keys.splice(entry.keys.indexOf(key), 1);
  }

  /** Another key for an open entry, dropped with it when its queue closes. */
  alias(key: string, entry: QueueEntry<G, H, M, B>): void {
    this.#entries.set(key, entry);
    entry.keys.push(key);
  }
}

/** A kind's options for acquire (A), acquireSync (S) and tryAcquire (T). */
export abstract class QueuedLock<G, H extends LockHandle, M, A, S, T> {
  #queue: LockQueue<G, H, M> | undefined;
  #closed = false;

  /** `queue` undefined: opened by bind() on first use. */
  protected constructor(queue: LockQueue<G, H, M> | undefined) {
    this.#queue = queue;
  }

  /** The lock as errors name it, e.g. "Semaphore 'jobs'". */
  protected abstract label(): string;

  /** The request mode read from an acquisition's options (already an object). */
  protected abstract mode(opts: Record<string, unknown> | undefined): M;

  /** Opens this instance's queue, counting it as a user; for kinds that open lazily. */
  protected bind(): LockQueue<G, H, M> {
    throw closedError(this.label()); // kinds that open in the constructor are only unbound once closed
  }

  /** The queue, bound on first use; throws if closed or if the lock cannot be opened. */
  protected open(): LockQueue<G, H, M> {
    if (this.#queue !== undefined) return this.#queue;
    if (this.#closed) throw closedError(this.label());
    this.#queue = this.bind();
    return this.#queue;
  }

  /** Waits for the lock without blocking the event loop. */
  acquire(options?: A): Promise<H> {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const mode = this.mode(opts);
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    const signal = validateSignal(opts?.signal, 'options.signal');
    let queue = this.#queue;
    if (queue === undefined) {
      try {
        queue = this.open();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return queue.acquire(this, mode, timeout, signal, this.acquire);
  }

  /** The lock if it is free now, else null. Never waits. */
  tryAcquire(options?: T): H | null {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const mode = this.mode(opts); // bad options are refused before anything is opened
    return this.open().tryAcquire(this, mode);
  }

  /**
   * Blocks this thread until the lock is granted, like fs.*Sync. Throws
   * EDEADLK if this thread already holds or waits for it. In a Worker, give
   * a timeout: terminate() cannot interrupt a thread blocked in native code.
   */
  acquireSync(options?: S): H {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const mode = this.mode(opts);
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    return this.open().acquireSync(this, mode, timeout);
  }

  /** Acquires, runs `fn` with the handle, and always releases. */
  run<R>(fn: (handle: H) => R | Promise<R>, options?: A): Promise<R> {
    validateFunction(fn, 'fn');
    return runHeld(this.acquire(options), fn);
  }

  /** Acquires with `acquireSync`, calls `fn` with the handle, and always releases. */
  runSync<R>(fn: (handle: H) => R, options?: S): R {
    validateFunction(fn, 'fn');
    return runHeldSync(this.acquireSync(options), fn);
  }

  /** Releases what this instance holds and rejects what it waits for. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const queue = this.#queue;
    this.#queue = undefined;
    queue?.closeOwner(this);
  }

  /** True once `close()` has been called: every later use throws ERR_LOCK_CLOSED. */
  get closed(): boolean {
    return this.#closed;
  }
}
