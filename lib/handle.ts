// What an acquisition gives back: release it once, by hand or by `using`.
// A handle dropped without release() is released when it is garbage
// collected, with a process warning, as Node does for a FileHandle.
import { setTimeout } from 'node:timers';
import type { Grant } from './native';

/** The part of a lock that a handle reports back to. */
export interface HandleOwner {
  /** The lock file, or the region under /dev/shm: what warnings name. */
  readonly path: string;
  /** `held` is the handle itself, or its Hold once swept (see sweepSoon). */
  releaseHandle(held: LockHandle | Hold): void;
  /** Swaps every handle it holds for the handle's Hold (see demote). */
  sweep(): void;
}

/**
 * What the owner keeps of a handle still held at a sweep, so that the
 * handle itself can be collected: `owner` is cleared by the first release,
 * whoever makes it.
 */
export interface Hold {
  owner: HandleOwner | undefined;
  readonly shared: boolean;
  /** Where it was acquired, when known (see captureSites). */
  readonly site: Error | undefined;
}

/** Releases what an owner holds, a handle or a Hold (close() of an instance). */
export function releaseHeld(held: LockHandle | Hold): void {
  if (held instanceof LockHandle) {
    held.release();
    return;
  }
  const owner = held.owner;
  if (owner === undefined) return;
  held.owner = undefined;
  owner.releaseHandle(held);
}

function dropped(hold: Hold): void {
  const path = hold.owner?.path;
  if (path === undefined) return; // released in time
  let failure = '';
  try {
    releaseHeld(hold);
  } catch (err) {
    failure = ` Releasing it failed: ${(err as Error)?.message ?? err}.`;
  }
  const where = hold.site === undefined ? '' : ` It was acquired ${firstOutsideFrame(hold.site)}.`;
  const hint = hold.site === undefined ? ' Run with --trace-warnings to see where it was acquired.' : '';
  const warning = new Error(
    `A lock handle was garbage-collected without release(): its${hold.shared ? ' shared' : ''} lock on '${path}' was released now.` +
      `${where}${failure} Call release(), or hold it with \`using\` or run().${hint}`,
  );
  warning.name = 'Warning';
  if (hold.site?.stack !== undefined) {
    warning.stack = `Warning: ${warning.message}${hold.site.stack.slice(hold.site.stack.indexOf('\n'))}`;
  }
  process.emitWarning(warning);
}

/** The first stack frame outside this package: the caller's line. */
function firstOutsideFrame(site: Error): string {
  const frames = (site.stack ?? '').split('\n').slice(1);
  const own = `${__dirname}/`;
  const line = frames.find((f) => !f.includes(own)) ?? frames[0] ?? '';
  return line.trim();
}

const collected = new FinalizationRegistry<Hold>(dropped);

// Registering every handle with the FinalizationRegistry, or even allocating
// a Hold for it, would cost a good part of a whole SharedMutex acquisition,
// and almost every handle is released within the same turn of the event
// loop. So a lock keeps its new handles themselves, strongly; a sweep (on a
// timer SWEEP_MS after a lock's first grant since its last sweep, or every
// SWEEP_AT grants of one lock) swaps those still held for a Hold and
// registers them, so that from then on nothing keeps them alive.
//
// A timer, not setImmediate, and a slow one: under contention a sweep is
// due after every native wait (its grant is the first since the last sweep).
// An immediate ran it on the thread that had just lost the lock, and a short
// timer wakes a thread that sleeps waiting for it; either takes a CPU from
// the holder (4 processes x 4 workers on 2 CPUs, async SharedMutex, paired
// reps: a 10 ms timer 1.7 times the immediate's acquisitions/s, 100 ms 1.7
// times the 10 ms timer's; BENCHMARKS.md). A dropped handle waits for a
// collection anyway; SWEEP_MS more changes nothing a user can see.
export const SWEEP_AT = 256;
const SWEEP_MS = 100;
const fresh: HandleOwner[] = [];
let sweepPending = false;

/** Record where each acquisition happens (costly): with --trace-warnings. */
let captureSites = tracingWarnings();

function tracingWarnings(): boolean {
  return (
    (process as { traceProcessWarnings?: boolean }).traceProcessWarnings === true ||
    process.execArgv.includes('--trace-warnings')
  );
}

function sweepAll(): void {
  sweepPending = false;
  captureSites = tracingWarnings();
  for (const owner of fresh.splice(0)) owner.sweep();
}

/** `owner` got its first handle since its last sweep: sweep it within SWEEP_MS. */
export function sweepSoon(owner: HandleOwner): void {
  fresh.push(owner);
  if (!sweepPending) {
    sweepPending = true;
    setTimeout(sweepAll, SWEEP_MS).unref();
  }
}

/** The Hold that stands for a handle still held at a sweep; registers the handle. */
export function demote(handle: LockHandle): Hold {
  const hold: Hold = { owner: handle._owner, shared: handle.shared, site: handle._site };
  handle._hold = hold;
  collected.register(handle, hold);
  return hold;
}

/**
 * One held acquisition. Release it exactly once: by hand, with `using`, or
 * by letting `run()` do it. Dropped unreleased, it is released when
 * garbage-collected, with a process warning naming the lock.
 */
export class LockHandle {
  /** Whether this handle holds the lock in shared mode. */
  declare readonly shared: boolean;
  /** @internal The lock, until this handle is released. */
  declare _owner: HandleOwner | undefined;
  /** @internal What the lock keeps instead of this handle once swept. */
  declare _hold: Hold | undefined;
  /** @internal Where it was acquired, when known. */
  declare _site: Error | undefined;

  /** Handles are made by acquisitions only (see makeHandle). */
  protected constructor() {}

  /** True once released, by `release()`, disposal or `close()` of its lock. */
  get released(): boolean {
    return this._owner === undefined || (this._hold !== undefined && this._hold.owner === undefined);
  }

  /** Releases the lock. Idempotent: later calls do nothing. */
  release(): void {
    const owner = this._owner;
    if (owner === undefined) return;
    this._owner = undefined;
    const hold = this._hold;
    if (hold === undefined) {
      owner.releaseHandle(this);
    } else if (hold.owner !== undefined) {
      hold.owner = undefined;
      owner.releaseHandle(hold);
    }
  }

  /** `release()`, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** `release()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

/**
 * A handle of a kind whose grants carry a fencing token and owner-death news
 * (see Grant in native.ts).
 */
export class GrantHandle extends LockHandle {
  /**
   * The previous holder died or was torn down while holding: the shared
   * state it guarded may be half-updated and needs repair.
   */
  declare readonly ownerDied: boolean;
  /** @internal The grant as native reports it. */
  declare readonly _grant: Grant;

  /** Fencing token (64-bit): strictly increasing across all acquisitions of the lock. */
  get token(): bigint {
    return typeof this._grant === 'bigint' ? this._grant >> 1n : BigInt(Math.floor(this._grant / 2));
  }
}

/**
 * Makes `then` an own property (undefined) of a handle class's prototype.
 * Every async acquisition resolves a promise with a handle, and resolving
 * looks `then` up on it: a miss walks the class chain up to Object.prototype
 * with V8's generic lookup, ~20 ns of a FileLock `await acquire()`
 * (bench/ab.js); a hit on the first prototype is quick. Handles stay what
 * they were, not thenable.
 */
export function notThenable(kind: { readonly prototype: object }): void {
  Object.defineProperty(kind.prototype, 'then', { value: undefined });
}

type Fields<H> = { -readonly [K in keyof H]: H[K] };

/**
 * A new handle of a GrantHandle class (`kind`, e.g. FileLockHandle), made
 * without running constructors: V8 (Node 20) does not inline the super()
 * chain of a derived class here, and a generic construct per acquisition
 * cost ~15 ns, a tenth of a SharedMutex pair (bench/ab.js). Every handle of
 * a kind gets the same fields in the same order, so it keeps one shape.
 */
export function makeHandle<H extends GrantHandle>(
  kind: { readonly prototype: H },
  owner: HandleOwner,
  shared: boolean,
  grant: Grant,
): Fields<H> {
  const handle = Object.create(kind.prototype) as Fields<H>;
  handle.shared = shared;
  handle._owner = owner;
  handle._hold = undefined;
  handle._site = captureSites ? acquiredHere() : undefined;
  // Parity by subtraction: grants above 2^31 are doubles, and `% 2` on a
  // double is a call to fmod (~17 ns).
  handle.ownerDied = typeof grant === 'bigint' ? (grant & 1n) === 1n : grant - 2 * Math.floor(grant / 2) === 1;
  handle._grant = grant;
  return handle;
}

// Cut at makeHandle: the frames below it are the acquisition's own.
function acquiredHere(): Error {
  const site = new Error('acquired here');
  Error.captureStackTrace(site, makeHandle);
  return site;
}

/** run(): `acquired` was started synchronously, so bad options threw already. */
export async function runHeld<H extends LockHandle, T>(
  acquired: Promise<H>,
  fn: (handle: H) => T | Promise<T>,
): Promise<T> {
  const handle = await acquired;
  try {
    return await fn(handle);
  } finally {
    handle.release();
  }
}

export function runHeldSync<H extends LockHandle, T>(handle: H, fn: (handle: H) => T): T {
  try {
    return fn(handle);
  } finally {
    handle.release();
  }
}
