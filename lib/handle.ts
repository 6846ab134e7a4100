// What an acquisition gives back: release it once, by hand or by `using`.

/** The part of a lock that a handle reports back to. */
export interface HandleOwner {
  releaseHandle(handle: LockHandle): void;
}

export class LockHandle {
  /** Whether this handle holds the lock in shared mode. */
  readonly shared: boolean;
  // A TS-private field rather than #owner: handles are made on every
  // acquisition, and V8's brand checks on # fields showed in profiles.
  private _owner: HandleOwner | undefined;

  constructor(owner: HandleOwner, shared: boolean) {
    this._owner = owner;
    this.shared = shared;
  }

  get released(): boolean {
    return this._owner === undefined;
  }

  /** Releases the lock. Idempotent: later calls do nothing. */
  release(): void {
    const owner = this._owner;
    if (owner === undefined) return;
    this._owner = undefined;
    owner.releaseHandle(this);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.release();
    return Promise.resolve();
  }
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
