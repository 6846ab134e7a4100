// What an acquisition gives back: release it once, by hand or by `using`.
// A handle dropped without release() is released when it is garbage
// collected, with a process warning, as Node does for a FileHandle.
import type { Grant } from './native';

/** The part of a lock that a handle reports back to. */
export interface HandleOwner {
  /** The lock file, or the region under /dev/shm: what warnings name. */
  readonly path: string;
  releaseHandle(hold: Hold): void;
}

/**
 * What the owner keeps of a handle, so that the handle itself can be
 * collected: `owner` is cleared by the first release, whoever makes it.
 */
export interface Hold {
  owner: HandleOwner | undefined;
  readonly shared: boolean;
  /** Where it was acquired, when known (see captureSites). */
  site: Error | undefined;
}

export function releaseHold(hold: Hold): void {
  const owner = hold.owner;
  if (owner === undefined) return;
  hold.owner = undefined;
  owner.releaseHandle(hold);
}

function dropped(hold: Hold): void {
  const path = hold.owner?.path;
  if (path === undefined) return; // released in time
  let failure = '';
  try {
    releaseHold(hold);
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

// Registering every handle with the FinalizationRegistry would cost more than
// a whole SharedMutex acquisition, and almost every handle is released within
// the same turn of the event loop. So new handles wait in a fixed ring, and a
// sweep (the next macrotask, or when the ring is full) registers only those
// still held, and empties the ring so that it keeps nothing alive.
const SWEEP_AT = 256;
const young: (LockHandle | undefined)[] = new Array(SWEEP_AT).fill(undefined);
let youngCount = 0;
let sweepPending = false;

/** Record where each acquisition happens (costly): with --trace-warnings. */
let captureSites = tracingWarnings();

function tracingWarnings(): boolean {
  return (
    (process as { traceProcessWarnings?: boolean }).traceProcessWarnings === true ||
    process.execArgv.includes('--trace-warnings')
  );
}

function sweep(): void {
  for (let i = 0; i < youngCount; i++) {
    const handle = young[i] as LockHandle;
    young[i] = undefined;
    if (handle._hold.owner !== undefined) collected.register(handle, handle._hold);
  }
  youngCount = 0;
  captureSites = tracingWarnings();
}

function sweepLater(): void {
  sweepPending = false;
  sweep();
}

function track(handle: LockHandle): void {
  young[youngCount++] = handle;
  if (youngCount === SWEEP_AT) sweep();
  else if (!sweepPending) {
    sweepPending = true;
    setImmediate(sweepLater).unref();
  }
}

/**
 * One held acquisition. Release it exactly once: by hand, with `using`, or
 * by letting `run()` do it. Dropped unreleased, it is released when
 * garbage-collected, with a process warning naming the lock.
 */
export class LockHandle {
  /** Whether this handle holds the lock in shared mode. */
  readonly shared: boolean;
  /** @internal What the lock keeps of this handle (a plain field: the hot path reads it). */
  readonly _hold: Hold;

  /** @internal Handles are made by acquisitions only. */
  constructor(owner: HandleOwner, shared: boolean) {
    this.shared = shared;
    this._hold = { owner, shared, site: captureSites ? acquiredHere() : undefined };
    track(this);
  }

  /** True once released, by `release()`, disposal or `close()` of its lock. */
  get released(): boolean {
    return this._hold.owner === undefined;
  }

  /** Releases the lock. Idempotent: later calls do nothing. */
  release(): void {
    releaseHold(this._hold);
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
  readonly ownerDied: boolean;
  private readonly _grant: Grant;

  /** @internal Handles are made by acquisitions only. */
  constructor(owner: HandleOwner, shared: boolean, grant: Grant) {
    super(owner, shared);
    this._grant = grant;
    this.ownerDied = typeof grant === 'bigint' ? (grant & 1n) === 1n : grant % 2 === 1;
  }

  /** Fencing token (64-bit): strictly increasing across all acquisitions of the lock. */
  get token(): bigint {
    return typeof this._grant === 'bigint' ? this._grant >> 1n : BigInt(Math.floor(this._grant / 2));
  }
}

function acquiredHere(): Error {
  const site = new Error('acquired here');
  Error.captureStackTrace(site, LockHandle);
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
