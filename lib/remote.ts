// What the remote kinds (Redis, PostgreSQL) share: the handle, the acquire
// pipeline (arguments, the optional machine-local first level, deadlines,
// abort) and the errors. A backend only grants and ungrants.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Alarm, Deadline } from './alarm';
import { mono } from './alarm';
import { AbortError, LockError, withStack } from './errors';
import { FileLock } from './file-lock';
import type { LockHandle } from './handle';
import { LeaseFile } from './lease-file';
import {
  invalidType,
  invalidValue,
  validateBoolean,
  validateFunction,
  validateObject,
  validateSignal,
  validateTimeout,
} from './validate';
import { WaitingFile } from './waiting-file';

/** How a remote lock's `acquire()` and `run()` wait. */
export interface RemoteAcquireOptions {
  /** Milliseconds to wait before rejecting with ETIMEDOUT. */
  timeout?: number;
  /** Gives up the wait with an `AbortError` whose `cause` is the signal's reason. */
  signal?: AbortSignal;
}

/** What a backend hands back for one grant. */
export interface Grant {
  token: bigint;
  /** Gives the lock back; called at most once. */
  ungrant(): Promise<void>;
  /**
   * With `local: true`: ends the hold but keeps the lease, described for the
   * next local holder; undefined when it must go back to the server instead
   * (then ungrant() follows).
   */
  pass?(): Promise<string | undefined>;
}

/**
 * How a backend takes over a lease a local holder left (RedisLock). A record
 * is text the backend wrote in Grant.pass(); the pipeline keeps it in a file
 * beside the local lock and touches it only while holding that lock.
 */
export interface Passing {
  /** Whether the record is this lock's to take (or unreadable, to be cleared); else it is left alone. */
  mine(record: string): boolean;
  /** The record's lease as this holder's grant, or undefined when the lease is gone. */
  adopt(record: string, wait: Wait): Promise<Grant | undefined>;
  /** Gives the record's lease back to the server. */
  drop(record: string): Promise<void>;
}

/** A wait's bounds, as a backend sees them. */
export interface Wait {
  /** performance.now() at which to give up; Infinity for none. */
  deadline: number;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** Aborts the future handle's signal: the hold is no longer certain. */
  lose(why: string, cause?: unknown): void;
}

/**
 * The lost-lock signal of one hold. Most holds are never lost and most
 * callers never look at the signal, so its AbortController is made only
 * when asked for (a loss before that is kept and shown at once).
 */
class Loss {
  readonly #name: string;
  #reason: LockError | undefined;
  #controller: AbortController | undefined;

  constructor(name: string) {
    this.#name = name;
  }

  lose(why: string, cause?: unknown): void {
    if (this.#reason !== undefined) return;
    this.#reason = lostError(this.#name, why, cause);
    this.#controller?.abort(this.#reason);
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }
}

/**
 * One hold of a RedisLock or PgLock. Unlike a local handle, releasing talks
 * to the server, so `release()` is a promise and the handle is disposed with
 * `await using`.
 */
export class RemoteHandle {
  /** Fencing token: strictly larger for every later grant of this lock. */
  readonly token: bigint;
  /** Whether this is a shared hold (PgLock's `shared: true`); RedisLock is exclusive only. */
  readonly shared: boolean;
  readonly #loss: Loss;
  #ungrant: (() => Promise<void>) | undefined;
  #released: Promise<void> | undefined;

  /** @internal Handles are made by the lock's acquire() only. */
  constructor(token: bigint, shared: boolean, loss: Loss, ungrant: () => Promise<void>) {
    this.token = token;
    this.shared = shared;
    this.#loss = loss;
    this.#ungrant = ungrant;
  }

  /** Aborts with a LockError ERR_LOCK_LOST when the hold is no longer certain. */
  get signal(): AbortSignal {
    return this.#loss.signal;
  }

  /** True once `release()` has been called (the server may not have answered yet). */
  get released(): boolean {
    return this.#released !== undefined;
  }

  /** Gives the lock back. Idempotent: later calls return the same promise. */
  release(): Promise<void> {
    if (this.#released === undefined) {
      const ungrant = this.#ungrant as () => Promise<void>;
      this.#ungrant = undefined;
      this.#released = ungrant();
    }
    return this.#released;
  }

  /** `release()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

export function lostError(name: string, why: string, cause?: unknown): LockError {
  return new LockError('ERR_LOCK_LOST', `lock '${name}' lost: ${why}`, { cause });
}

/** The server failed or went away; `cause` is the client's error. */
export function serverError(server: string, name: string, cause: unknown): LockError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new LockError('ERR_LOCK_SERVER', `${server}: ${detail} (lock '${name}')`, { cause });
}

export function remoteTimeoutError(name: string, ms: number, syscall: string): LockError {
  return new LockError('ETIMEDOUT', `ETIMEDOUT: lock '${name}' not acquired within ${ms} ms`, {
    errno: -osConstants.errno.ETIMEDOUT,
    syscall,
  });
}

const LATE_MS = 2;
const STALL_MS = 10;
const MAX_STALLS = 3;

/**
 * Resolves or rejects with `work`, unless the deadline or the signal comes
 * first; then rejects at once and hands a late result to `late` (a grant
 * that arrives after its waiter gave up is given back, never kept). With an
 * `alarm`, the deadline waits on it (unref'd, one timer for many bounds)
 * instead of a timer of its own.
 */
export function bounded<T>(
  work: Promise<T>,
  wait: Pick<Wait, 'deadline' | 'signal'>,
  onTimeout: () => unknown,
  late: (value: T) => void,
  alarm?: Alarm,
): Promise<T> {
  const { deadline, signal } = wait;
  if (deadline === Number.POSITIVE_INFINITY && signal === undefined) return work; // nothing to bound it by
  if (signal?.aborted) {
    work.then(late, () => {});
    return Promise.reject(new AbortError(signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let dueAt: Deadline | undefined;
    let settled = false;
    const finish = () => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      if (dueAt !== undefined) alarm?.cancel(dueAt);
      signal?.removeEventListener('abort', onAbort);
    };
    // A late value reaches `late` once, from the handler below.
    const giveUp = (err: unknown) => {
      if (settled) return;
      finish();
      reject(err);
    };
    const onAbort = () => giveUp(new AbortError(signal?.reason));
    if (deadline !== Number.POSITIVE_INFINITY) {
      // Whole milliseconds: Node keeps one timer list per delay, and
      // fractional delays would make a new one for every call.
      const ms = Math.max(0, Math.ceil(deadline - performance.now()));
      // A deadline whose timer fires late found a loop that was blocked (a
      // long GC, a synchronous section): a reply may have come meanwhile,
      // unread, because timers run before sockets are read. It then gives
      // up only from a timer STALL_MS later that fires on time, so the loop
      // has been idle, reading its sockets, in between (a timer or an
      // immediate queued from the late one is not enough in Deno, which
      // may run them in the same pass); at most MAX_STALLS times.
      const expire = (due: number, stalls: number) => () => {
        if (settled) return;
        if (mono() - due <= LATE_MS || stalls === MAX_STALLS) return giveUp(onTimeout());
        const again = setTimeout(expire(mono() + STALL_MS, stalls + 1), STALL_MS);
        if (alarm !== undefined) again.unref(); // as the alarm: the bound must not hold the process
      };
      const due = mono() + ms;
      if (alarm === undefined) timer = setTimeout(expire(due, 0), ms);
      else dueAt = alarm.add(due, expire(due, 0));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        if (settled) return late(value);
        finish();
        resolve(value);
      },
      (err) => {
        if (settled) return;
        finish();
        reject(err);
      },
    );
  });
}

/** What every remote kind's options share. */
export interface RemoteLockOptions {
  /** Queue first on a machine-local FileLock keyed by the name. */
  local?: boolean;
  /** Directory of the machine-local lock files (default: per user, in tmpdir). */
  localDir?: string;
}

const MAX_NAME = 1000;

export function validateName(value: unknown): string {
  if (typeof value !== 'string') throw invalidType('name', 'of type string', value);
  if (value.length === 0 || value.length > MAX_NAME) {
    throw invalidValue('name', value, `must be a string of 1 to ${MAX_NAME} characters`);
  }
  if (value.includes('\u0000')) throw invalidValue('name', value, 'must not contain null bytes');
  return value;
}

function defaultLocalDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(tmpdir(), `interlock-${uid}`);
}

// After passing a lease, how long the releaser leaves the local lock to
// whoever waits for it before taking it back to return an unwanted lease.
const PASS_MOMENT_MS = 1;

function localLock(kind: string, name: string, opts: Record<string, unknown>, scope: string): FileLock | undefined {
  if (!validateBoolean(opts.local, 'options.local', false)) {
    if (opts.localDir !== undefined) throw invalidValue('options.localDir', opts.localDir, 'needs local: true');
    return undefined;
  }
  let dir = defaultLocalDir();
  if (opts.localDir !== undefined) {
    if (typeof opts.localDir !== 'string' || opts.localDir === '') {
      throw invalidValue('options.localDir', opts.localDir, 'must be a non-empty string');
    }
    dir = opts.localDir;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Hashed: any name makes a valid file name of fixed length.
  // The scope (RedisLock's key prefix) names a different server lock, so a
  // different local lock: a lease passed on one is never found by the other.
  const what = scope === '' ? `${kind}\u0000${name}` : `${kind}\u0000${scope}\u0000${name}`;
  const digest = createHash('sha256').update(what).digest('hex').slice(0, 32);
  return new FileLock(join(dir, `${kind}-${digest}.lock`));
}

/** The acquire pipeline of every remote kind; a subclass implements grant(). */
export abstract class RemoteLock {
  /** The lock's name, as given. */
  readonly name: string;
  readonly #local: FileLock | undefined;
  readonly #lease: LeaseFile | undefined;
  readonly #waiting: WaitingFile | undefined;

  protected constructor(kind: string, name: string, opts: Record<string, unknown>, scope = '') {
    this.name = name;
    this.#local = localLock(kind, name, opts, scope);
    const base = this.#local?.path.replace(/\.lock$/, '');
    this.#lease = base === undefined ? undefined : new LeaseFile(`${base}.lease`);
    this.#waiting = base === undefined ? undefined : new WaitingFile(`${base}.waiting`);
  }

  /** How this kind passes a held lease to the next local holder; none by default. */
  protected passing(): Passing | undefined {
    return undefined;
  }

  protected abstract grant(wait: Wait): Promise<Grant>;
  protected abstract readonly shared: boolean;

  /**
   * Waits until the server grants the lock (without polling), and resolves
   * with the handle: release it, and watch its `signal` while it is held.
   */
  acquire(options?: RemoteAcquireOptions): Promise<RemoteHandle> {
    const opts = validateObject(options, 'options');
    const timeoutMs = validateTimeout(opts.timeout, 'options.timeout');
    const signal = validateSignal(opts.signal, 'options.signal');
    return this.#acquire(timeoutMs, signal);
  }

  async #acquire(timeoutMs: number, signal: AbortSignal | undefined): Promise<RemoteHandle> {
    let localHandle: LockHandle | undefined;
    let grant: Grant;
    const loss = new Loss(this.name);
    try {
      if (signal?.aborted) throw new AbortError(signal.reason);
      const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
      const wait = { deadline, timeoutMs, signal, lose: (why: string, cause?: unknown) => loss.lose(why, cause) };
      let passed: Grant | undefined;
      if (this.#local !== undefined) {
        localHandle = this.#local.tryAcquire() ?? (await this.#waitLocal(timeoutMs, signal));
        passed = await this.#takeLease(wait);
      }
      grant = passed ?? (await this.grant(wait));
    } catch (err) {
      localHandle?.release();
      // The caller's stack, taken only now that there is an error: this
      // frame's async trace names the functions that await acquire() or
      // run() (not a caller that chains .then()). Taken at every call, it
      // was half of this layer's own time: 5.5 µs per acquire + release
      // against a client that answers at once, 3 µs without it.
      throw withStack(err, new Error());
    }
    const local = localHandle;
    const ungrant = local === undefined ? () => grant.ungrant() : () => this.#ungrantLocal(grant, local as LockHandle);
    return new RemoteHandle(grant.token, this.shared, loss, ungrant);
  }

  /** Waits for the local lock, marked as waiting so that its releaser need not stay. */
  async #waitLocal(timeoutMs: number, signal: AbortSignal | undefined): Promise<LockHandle> {
    const waiting = this.#waiting as WaitingFile;
    waiting.enter();
    try {
      return await (this.#local as FileLock).acquire({ timeout: timeoutMs < 0 ? undefined : timeoutMs, signal });
    } finally {
      waiting.leave();
    }
  }

  /** Under the local lock: the lease a local holder left, if any and still held. */
  async #takeLease(wait: Wait): Promise<Grant | undefined> {
    const passing = this.passing();
    const lease = this.#lease as LeaseFile;
    const record = passing === undefined ? undefined : lease.read();
    if (passing === undefined || record === undefined || !passing.mine(record)) return undefined;
    if (!lease.claim(record)) return undefined; // unclaimed, so not ours to use
    return passing.adopt(record, wait);
  }

  /**
   * Releases a hold taken under the local lock: passes its lease on when the
   * backend can, and takes it back to the server when nobody local took it.
   * Resolves at once when an acquire() on this machine waits for the local
   * lock (it claims the lease; the take-back still runs in case it gives
   * up), else once the lease is either claimed or released, so that a
   * process that exits after `await release()` leaves none behind unless
   * someone was about to take it.
   */
  async #ungrantLocal(grant: Grant, local: LockHandle): Promise<void> {
    const localLock = this.#local as FileLock;
    const lease = this.#lease as LeaseFile;
    // Once close() has let go of the local lock, the record could not be
    // written under it, nor taken back: the lease goes to the server.
    const record = grant.pass === undefined || localLock.closed ? undefined : await grant.pass().catch(() => undefined);
    if (record === undefined || localLock.closed || !lease.write(record)) {
      try {
        await grant.ungrant();
      } finally {
        local.release();
      }
      return;
    }
    local.release();
    const takeBack = this.#takeBack(record);
    if ((this.#waiting as WaitingFile).waited()) takeBack.catch(() => {});
    else await takeBack;
  }

  /** Takes a passed lease back to the server when no local holder claims it in a moment. */
  async #takeBack(record: string): Promise<void> {
    const localLock = this.#local as FileLock;
    const lease = this.#lease as LeaseFile;
    // Closed meanwhile: the next local holder, or the lease's end, returns it.
    // Claimed or replaced: a later holder claimed it (only holders of the
    // local lock change the file, and no record is written twice), so the
    // local lock need not be taken to know.
    const taken = () => localLock.closed || lease.read() !== record;
    // A waiter of this thread has claimed it by the next turn of the event
    // loop: then release() need not wait out the moment (with a few tasks
    // per thread, that wait was what bounded the rate of passes).
    await new Promise((resolve) => setImmediate(resolve));
    if (taken()) return;
    await new Promise((resolve) => setTimeout(resolve, PASS_MOMENT_MS));
    if (taken()) return;
    // Busy: its holder took the lock after the record was written, so it
    // owns the record (it claims or returns it, by the same rule).
    const again = localLock.tryAcquire();
    if (again === null) return;
    try {
      // Still this release's record: nobody local took the lease. Another
      // record means a later holder took this one and left its own, which
      // that holder looks back for in turn (so taking the local lock in a
      // gap between two holders does not end their chain of passes).
      if (lease.claim(record)) {
        await (this.passing() as Passing).drop(record);
      }
    } finally {
      again.release();
    }
  }

  /** Acquires, runs `fn(handle, handle.signal)`, and always releases. */
  run<T>(
    fn: (handle: RemoteHandle, signal: AbortSignal) => T | Promise<T>,
    options?: RemoteAcquireOptions,
  ): Promise<T> {
    validateFunction(fn, 'fn');
    return this.#run(this.acquire(options), fn);
  }

  async #run<T>(
    acquired: Promise<RemoteHandle>,
    fn: (handle: RemoteHandle, signal: AbortSignal) => T | Promise<T>,
  ): Promise<T> {
    const handle = await acquired;
    try {
      return await fn(handle, handle.signal);
    } finally {
      await handle.release();
    }
  }

  /** Closes the machine-local lock, if any. */
  close(): void {
    this.#local?.close();
    this.#lease?.close();
    this.#waiting?.close();
  }
}
