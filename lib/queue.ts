// The per-thread half of every lock: one LockQueue per lock (resolved path or
// mutex name) per JS thread. Acquisitions from any number of async tasks and
// instances wait here in FIFO order, and only the head contends at the OS
// level, so a thread holds at most one fd and one native waiter per lock.
// A request's `mode` is what it asks the OS for: `shared` (a boolean) for
// FileLock and SharedMutex, a weight for Semaphore.
import { AbortError, closedError, deadlockError, timeoutError, withStack } from './errors';
import { demote, type HandleOwner, type Hold, LockHandle, releaseHeld, SWEEP_AT, sweepSoon } from './handle';
import { ECANCELED, type NativeError, type NativeWait, type WaitCallback } from './native';

/** What a lock kind provides; errors thrown are already LockErrors. */
export interface Backend<G, M = boolean> {
  readonly path: string;
  /** The call a wait blocks in, named by timeout errors. */
  readonly waitSyscall: string;
  /**
   * Every request is a grant of its own (a Semaphore's permits): holders on
   * this thread do not stop the head, and each handle unlocks its own grant.
   * Otherwise this thread holds one grant, that shared requests join.
   */
  readonly perRequest?: boolean;
  /** A grant, or null when another holder has the lock. */
  tryLock(mode: M): G | null;
  lockSync(mode: M, timeoutMs: number): G;
  /** Waits on a dedicated native thread; `done` runs on this thread. */
  lockAsync(mode: M, done: WaitCallback<G>): NativeWait;
  unlock(grant: G): void;
  close(): void;
  /** The error for a failed native wait (as for a failed sync call). */
  waitError(error: NativeError): unknown;
}

export type MakeHandle<G, H extends LockHandle, M = boolean> = (owner: HandleOwner, mode: M, grant: G) => H;

interface Request<H, M> {
  readonly owner: object;
  readonly mode: M;
  readonly resolve: (handle: H) => void;
  readonly reject: (err: unknown) => void;
  readonly site: Error; // the caller's stack, for errors that surface later
  timer?: ReturnType<typeof setTimeout>;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface PendingWait<M> {
  native?: NativeWait;
  readonly mode: M;
  cancelling: boolean;
  // Rejections held back until the native side has settled, so a grant that
  // raced the cancel is released before anyone hears "timed out".
  readonly deferred: (() => void)[];
}

export class LockQueue<G, H extends LockHandle, M = boolean> implements HandleOwner {
  /** FileLock/SharedMutex instances of this thread that use this lock. */
  refs = 0;
  readonly #backend: Backend<G, M>;
  readonly #makeHandle: MakeHandle<G, H, M>;
  readonly #perRequest: boolean;
  readonly #onClosed: () => void;
  // Current holds, their instances and grants, in parallel arrays: an
  // exclusive lock has one, so this beats a Map on the hot path. A handle is
  // kept itself until swept, then as its Hold, so that a dropped handle can
  // be collected (see handle.ts).
  readonly #held: (LockHandle | Hold)[] = [];
  readonly #heldBy: object[] = [];
  readonly #grants: G[] = [];
  readonly #queue: Request<H, M>[] = [];
  #heldShared = false;
  #young = 0; // grants since the last sweep
  #wait: PendingWait<M> | null = null;
  #closed = false;

  constructor(backend: Backend<G, M>, makeHandle: MakeHandle<G, H, M>, onClosed: () => void) {
    this.#backend = backend;
    this.#makeHandle = makeHandle;
    this.#perRequest = backend.perRequest === true;
    this.#onClosed = onClosed;
  }

  get path(): string {
    return this.#backend.path;
  }

  /** Someone on this thread is already waiting (or a cancelled wait winds down). */
  #busy(): boolean {
    return this.#queue.length > 0 || this.#wait !== null;
  }

  /** This thread's holders stop a request (unless it joins them). */
  #heldHere(): boolean {
    return this.#held.length > 0 && !this.#perRequest;
  }

  #joinable(mode: M): boolean {
    return (mode as unknown) === true && this.#heldShared && this.#heldHere();
  }

  tryAcquire(owner: object, mode: M): H | null {
    if (this.#busy()) return null;
    if (this.#heldHere()) return this.#joinable(mode) ? this.#join(owner) : null;
    const grant = this.#backend.tryLock(mode);
    return grant === null ? null : this.#grant(owner, mode, grant);
  }

  acquireSync(owner: object, mode: M, timeoutMs: number): H {
    if (this.#busy() || this.#heldHere()) {
      if (!this.#busy() && this.#joinable(mode)) return this.#join(owner);
      throw deadlockError(this.path);
    }
    return this.#grant(owner, mode, this.#backend.lockSync(mode, timeoutMs));
  }

  /** `caller` is the public method, cut from the stack kept for late errors. */
  acquire(
    owner: object,
    mode: M,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    caller: (...args: never[]) => unknown,
  ): Promise<H> {
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason, this.path));
    let tried = false;
    if (!this.#busy()) {
      try {
        const handle = this.tryAcquire(owner, mode);
        if (handle !== null) return Promise.resolve(handle);
      } catch (err) {
        return Promise.reject(err);
      }
      tried = !this.#heldHere();
    }
    return new Promise<H>((resolve, reject) => {
      const site = new Error();
      Error.captureStackTrace(site, caller);
      const req: Request<H, M> = { owner, mode, resolve, reject, site };
      if (timeoutMs >= 0) {
        req.timer = setTimeout(
          () => this.#cancel(req, timeoutError(timeoutMs, this.path, this.#backend.waitSyscall)),
          timeoutMs,
        );
      }
      if (signal !== undefined) {
        req.signal = signal;
        req.onAbort = () => this.#cancel(req, new AbortError(signal.reason, this.path));
        signal.addEventListener('abort', req.onAbort, { once: true });
      }
      this.#queue.push(req);
      this.#pump(tried);
    });
  }

  releaseHandle(held: LockHandle | Hold): void {
    const index = this.#held.indexOf(held);
    if (index < 0) return;
    const last = this.#held.length - 1;
    const grant = this.#grants[index] as G;
    if (index !== last) {
      this.#held[index] = this.#held[last] as LockHandle | Hold;
      this.#heldBy[index] = this.#heldBy[last] as object;
      this.#grants[index] = this.#grants[last] as G;
    }
    this.#held.pop();
    this.#heldBy.pop();
    this.#grants.pop();
    if (last > 0 && !this.#perRequest) return;
    try {
      this.#backend.unlock(grant);
    } finally {
      this.#pump();
    }
  }

  /** Drops what `owner` holds and waits for; closes the lock when unused. */
  closeOwner(owner: object): void {
    for (const req of [...this.#queue]) {
      if (req.owner === owner) this.#cancel(req, closedError('the lock'));
    }
    const held = [...this.#held];
    const heldBy = [...this.#heldBy];
    for (let i = 0; i < held.length; i++) {
      if (heldBy[i] === owner) releaseHeld(held[i] as LockHandle | Hold);
    }
    this.refs--;
    this.#maybeClose();
  }

  sweep(): void {
    this.#demoteAll();
    this.#young = 0;
  }

  #demoteAll(): void {
    const held = this.#held;
    for (let i = 0; i < held.length; i++) {
      const h = held[i];
      if (h instanceof LockHandle) held[i] = demote(h);
    }
  }

  #grant(owner: object, mode: M, grant: G): H {
    if (this.#young === 0) sweepSoon(this);
    else if (this.#young % SWEEP_AT === 0) this.#demoteAll(); // a long synchronous stretch
    this.#young++;
    const handle = this.#makeHandle(this, mode, grant);
    this.#held.push(handle);
    this.#heldBy.push(owner);
    this.#grants.push(grant);
    this.#heldShared = (mode as unknown) === true;
    return handle;
  }

  #join(owner: object): H {
    return this.#grant(owner, true as M, this.#grants[0] as G);
  }

  #settle(req: Request<H, M>, handle: H): void {
    this.#forget(req);
    handle._site ??= req.site; // captured anyway for late errors
    req.resolve(handle);
  }

  #fail(req: Request<H, M>, err: unknown): void {
    this.#forget(req);
    req.reject(withStack(err, req.site));
  }

  #forget(req: Request<H, M>): void {
    if (req.timer !== undefined) clearTimeout(req.timer);
    if (req.onAbort !== undefined) req.signal?.removeEventListener('abort', req.onAbort);
  }

  /** Hands the lock down the queue as far as it can go, then waits natively. */
  #pump(tried = false): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Request<H, M>;
      if (this.#heldHere()) {
        if (!this.#joinable(head.mode)) return;
        this.#queue.shift();
        this.#settle(head, this.#join(head.owner));
        continue;
      }
      if (this.#wait !== null) {
        // A native wait for another mode cannot serve this head.
        if (this.#wait.mode !== head.mode) this.#stopWait(this.#wait);
        return;
      }
      let grant: G | null = null;
      if (!tried) {
        try {
          grant = this.#backend.tryLock(head.mode);
        } catch (err) {
          this.#queue.shift();
          this.#fail(head, err);
          continue;
        }
      }
      tried = false;
      if (grant !== null) {
        this.#queue.shift();
        this.#settle(head, this.#grant(head.owner, head.mode, grant));
        continue;
      }
      try {
        this.#startWait(head.mode);
      } catch (err) {
        this.#queue.shift();
        this.#fail(head, err);
        continue;
      }
      return;
    }
    this.#maybeClose();
  }

  #startWait(mode: M): void {
    const wait: PendingWait<M> = { mode, cancelling: false, deferred: [] };
    wait.native = this.#backend.lockAsync(mode, (error, grant) => this.#waitDone(wait, error, grant));
    this.#wait = wait;
  }

  #stopWait(wait: PendingWait<M>): void {
    if (wait.cancelling) return;
    wait.cancelling = true;
    wait.native?.cancel();
  }

  #waitDone(wait: PendingWait<M>, error: NativeError | null, grant: G | undefined): void {
    if (this.#wait === wait) this.#wait = null;
    for (const reject of wait.deferred) reject();
    if (this.#closed) return;
    if (error === null) {
      const head = this.#queue[0];
      if (head !== undefined && head.mode === wait.mode) {
        this.#queue.shift();
        this.#settle(head, this.#grant(head.owner, head.mode, grant as G));
      } else {
        this.#backend.unlock(grant as G); // nobody is left to take it
      }
    } else if (error.errno !== ECANCELED) {
      const head = this.#queue.shift();
      if (head !== undefined) this.#fail(head, this.#backend.waitError(error));
    }
    this.#pump();
  }

  #cancel(req: Request<H, M>, err: unknown): void {
    const index = this.#queue.indexOf(req);
    if (index < 0) return;
    this.#queue.splice(index, 1);
    this.#forget(req);
    const wait = this.#wait;
    const next = this.#queue[0];
    if (index === 0 && wait !== null && (next === undefined || next.mode !== wait.mode)) {
      // Nobody behind can adopt the native wait: stop it, and reject only
      // once it has settled (and released a grant that raced us).
      this.#stopWait(wait);
      wait.deferred.push(() => req.reject(withStack(err, req.site)));
      return;
    }
    req.reject(withStack(err, req.site));
    // The new head may be grantable now (a shared request behind a cancelled
    // exclusive one joins the current shared holders).
    if (index === 0) this.#pump();
  }

  #maybeClose(): void {
    if (this.refs > 0 || this.#held.length > 0 || this.#queue.length > 0 || this.#closed) return;
    if (this.#wait !== null) {
      this.#stopWait(this.#wait);
      return; // #waitDone comes back here
    }
    this.#closed = true;
    this.#backend.close();
    this.#onClosed();
  }
}
