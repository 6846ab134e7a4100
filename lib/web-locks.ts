// The W3C Web Locks API (https://w3c.github.io/web-locks/) over a lock table
// in shared memory, so one queue spans every process and worker thread of
// the user. The table (native/core/lock_table.*) runs "request a lock",
// "release the lock", "abort the request" and "process the lock request
// queue"; this file is the IDL surface: argument conversion, the error cases
// in the order the request() steps list them, and the two promises of a lock
// (the waiting promise the callback returns, the released promise request()
// returns).
import { threadId } from 'node:worker_threads';
import { fromNative } from './errors';
import { native } from './native';
import { invalidValue } from './validate';

/**
 * How a Web Lock is held: one `'exclusive'` holder, or any number of
 * `'shared'` holders together, as in the W3C specification.
 */
export type LockMode = 'exclusive' | 'shared';

/** The options of {@link LockManager.request}, with the specification's meaning. */
export interface LockOptions {
  /** Default `'exclusive'`. */
  mode?: LockMode;
  /** Grant only if no wait is needed; otherwise the callback is called with `null`. */
  ifAvailable?: boolean;
  /**
   * Take the lock from its holders at once (exclusive only): their
   * `request()` promises reject with an `AbortError`. For breaking a stuck holder.
   */
  steal?: boolean;
  /** Withdraws the request while it waits; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One held or pending request, as {@link LockManager.query} reports it. */
export interface LockInfo {
  /** The lock's name, as requested. */
  name: string;
  /** The mode requested (or held). */
  mode: LockMode;
  /** `"<pid>:<threadId>"` of the thread that made the request, so a stuck holder can be found. */
  clientId: string;
}

/** The whole scope's queue at one instant, every process and thread included. */
export interface LockManagerSnapshot {
  /** Granted requests, in the order they were granted. */
  held: LockInfo[];
  /** Waiting requests, in the order they were made (the order they will be granted in). */
  pending: LockInfo[];
}

/** The options of `new LockManager()`. */
export interface LockManagerOptions {
  /** An isolated namespace: [A-Za-z0-9._-], 1 to 100 characters. */
  scope?: string;
}

/**
 * Called once the lock is granted (or with `null` when `ifAvailable` found
 * it taken); the lock is held until the value it returns settles.
 */
export type LockGrantedCallback<T> = (lock: Lock | null) => T | PromiseLike<T>;

/** Longest lock name, in UTF-16 code units (JavaScript string length). */
export const LOCK_NAME_MAX = 256;
const SCOPE = /^[A-Za-z0-9._-]{1,100}$/;

const construct = Symbol('Lock');

/**
 * A granted Web Lock, passed to the request's callback: the name and mode it
 * was granted for. Releasing is the callback's settling, not a method.
 */
export class Lock {
  readonly #name: string;
  readonly #mode: LockMode;

  /** @internal Locks are made by the manager only. */
  constructor(key: symbol, name: string, mode: LockMode) {
    if (key !== construct) throw new TypeError('Illegal constructor');
    this.#name = name;
    this.#mode = mode;
  }
  /** The name as requested (after string conversion). */
  get name(): string {
    return this.#name;
  }
  /** The mode it was granted in. */
  get mode(): LockMode {
    return this.#mode;
  }
  /** `'Lock'`, as the browser's class reports, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return 'Lock';
  }
}

interface Request {
  id: number;
  name: string;
  mode: LockMode;
  callback: LockGrantedCallback<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
  state: 'pending' | 'held' | 'done';
  signal?: AbortSignal;
  onAbort?: () => void;
}

function domException(name: string, message: string): DOMException {
  return new DOMException(message, name);
}

function convert(err: unknown, path: string): unknown {
  return fromNative(err, path, undefined, {
    what: 'Web Locks table',
    incompatible: 'is owned by another user, or was made by another version',
  });
}

// One per scope per JS thread: this thread's client in the table.
class Client {
  readonly path: string;
  readonly #table: ReturnType<typeof openTable>;
  readonly #requests = new Map<number, Request>();
  #pending = 0;

  constructor(region: string) {
    this.path = `/dev/shm/${region}`;
    try {
      this.#table = openTable(region, () => this.drain());
    } catch (err) {
      throw convert(err, this.path);
    }
  }

  request(
    name: string,
    mode: LockMode,
    ifAvailable: boolean,
    steal: boolean,
    req: Omit<Request, 'id' | 'state'>,
  ): void {
    let answer: number;
    try {
      answer = this.#table.request(name, mode === 'shared', ifAvailable, steal);
    } catch (err) {
      req.reject(convert(err, this.path));
      return;
    }
    if (answer < 0) {
      // ifAvailable and not grantable: the callback gets null, nothing queued.
      queueMicrotask(() => {
        let result: unknown;
        try {
          result = req.callback(null);
        } catch (err) {
          req.reject(err);
          return;
        }
        req.resolve(result);
      });
      if (answer === -3) this.drain();
      return;
    }
    const id = Math.floor(answer / 4);
    const full: Request = { ...req, id, state: 'pending' };
    this.#requests.set(id, full);
    if (answer % 2 === 1) {
      this.#granted(full);
    } else {
      this.#pending++;
      if (req.signal !== undefined) this.#watchSignal(full, req.signal);
      this.#keepAlive();
    }
    if (answer % 4 >= 2) this.drain();
  }

  query(): LockManagerSnapshot {
    let both: [unknown[], unknown[], ArrayBuffer];
    try {
      both = this.#table.query();
    } catch (err) {
      throw convert(err, this.path);
    }
    const units = new Uint16Array(both[2]);
    let at = 0;
    const infos = (flat: unknown[]): LockInfo[] => {
      const out: LockInfo[] = [];
      for (let i = 0; i < flat.length; i += 4) {
        const end = at + (flat[i] as number);
        out.push({
          name: String.fromCharCode(...units.subarray(at, end)),
          mode: flat[i + 1] ? 'shared' : 'exclusive',
          clientId: `${flat[i + 2]}:${flat[i + 3]}`,
        });
        at = end;
      }
      return out;
    };
    return { held: infos(both[0]), pending: infos(both[1]) };
  }

  liveClients(): number {
    return this.#table.liveClients();
  }

  /** Grants and losses the table found for this thread's requests. */
  drain(): void {
    const events = this.#table.takeEvents();
    for (let i = 0; i < events.length; i += 2) {
      const req = this.#requests.get(events[i] as number);
      if (req === undefined) continue;
      if (req.state === 'pending') this.#pending--;
      if (events[i + 1]) {
        this.#granted(req);
      } else {
        this.#lost(req);
      }
    }
    this.#keepAlive();
  }

  #watchSignal(req: Request, signal: AbortSignal): void {
    req.signal = signal;
    req.onAbort = () => {
      if (req.state !== 'pending') return;
      // "Abort the request": out of the queue, then the queue is processed.
      const answer = this.#table.abort(req.id);
      if (answer % 2 === 1) {
        req.state = 'done';
        this.#pending--;
        this.#requests.delete(req.id);
        req.reject(signal.reason ?? domException('AbortError', 'The lock request was aborted'));
      }
      if (answer >= 2) this.drain();
      this.#keepAlive();
    };
    signal.addEventListener('abort', req.onAbort, { once: true });
  }

  // Once granted the signal is ignored.
  #forgetSignal(req: Request): void {
    if (req.onAbort !== undefined) req.signal?.removeEventListener('abort', req.onAbort);
    req.onAbort = undefined;
  }

  #granted(req: Request): void {
    req.state = 'held';
    this.#forgetSignal(req);
    // "Enqueue the following steps": the callback runs in a later job, and
    // its result is the lock's waiting promise.
    queueMicrotask(() => {
      let waiting: Promise<unknown>;
      try {
        waiting = Promise.resolve(req.callback(new Lock(construct, req.name, req.mode)));
      } catch (err) {
        waiting = Promise.reject(err);
      }
      waiting.then(
        (value) => this.#settled(req, () => req.resolve(value)),
        (err) => this.#settled(req, () => req.reject(err)),
      );
    });
  }

  // The waiting promise settled: release the lock, then settle the released
  // promise with it (a no-op when a steal already rejected it).
  #settled(req: Request, settle: () => void): void {
    if (req.state === 'held') {
      req.state = 'done';
      this.#requests.delete(req.id);
      let answer = 0;
      try {
        answer = this.#table.release(req.id);
      } catch (err) {
        req.reject(convert(err, this.path));
        return;
      }
      if (answer >= 2) this.drain();
    }
    settle();
  }

  // Stolen (the released promise rejects at once; the callback runs on), or
  // dropped from a table that had to be repaired.
  #lost(req: Request): void {
    const wasHeld = req.state === 'held';
    req.state = 'done';
    this.#requests.delete(req.id);
    this.#forgetSignal(req);
    req.reject(
      domException('AbortError', wasHeld ? `The lock '${req.name}' was stolen` : `The lock request was dropped`),
    );
  }

  #keepAlive(): void {
    this.#table.keepAlive(this.#pending > 0);
  }
}

function openTable(region: string, onEvents: () => void) {
  return new native.LockTable(region, 0o600, threadId, onEvents);
}

// Scope → this thread's client; made on first use.
const clients = new Map<string, Client>();

function regionName(scope: string): string {
  const uid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  return `interlock-weblocks-${uid}-${scope}`;
}

/**
 * The W3C Web Locks API with a queue that spans every process and worker
 * thread of this user on the machine, kept in a table in `/dev/shm`. Each
 * scope is its own table: its own names and queue. {@link locks} is the
 * default scope's manager.
 */
export class LockManager {
  readonly #region: string;

  /** Opens nothing yet: the scope's table is mapped by the first request or query of each thread. */
  constructor(options: LockManagerOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw invalidValue('options', options, 'must be an object');
    }
    const scope = options.scope ?? 'default';
    if (typeof scope !== 'string' || !SCOPE.test(scope)) {
      throw invalidValue('options.scope', scope, 'must be 1 to 100 characters of [A-Za-z0-9._-]');
    }
    this.#region = regionName(scope);
  }

  #client(): Client {
    let client = clients.get(this.#region);
    if (client === undefined) {
      client = new Client(this.#region);
      clients.set(this.#region, client);
    }
    return client;
  }

  /**
   * Requests the lock `name` (exclusive) and calls `callback` once it is
   * granted; the lock is released when the callback's result settles, and
   * the promise resolves or rejects with that result.
   */
  request<T>(name: string, callback: LockGrantedCallback<T>): Promise<T>;
  /**
   * Requests the lock `name` with `options` (mode, `ifAvailable`, `steal`,
   * `signal`). Requests of a name are granted in the order they were made,
   * across processes; argument errors reject the promise, as WebIDL does.
   */
  request<T>(name: string, options: LockOptions, callback: LockGrantedCallback<T>): Promise<T>;
  request(name: unknown, options?: unknown, callback?: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      // WebIDL: argument conversion errors become a rejected promise.
      if (callback === undefined) {
        callback = options;
        options = undefined;
      }
      const str = `${name as string}`;
      if (typeof callback !== 'function') {
        throw new TypeError(`The "callback" argument must be a function`);
      }
      const opts = convertOptions(options);
      if (str.startsWith('-')) {
        throw domException('NotSupportedError', `Lock names starting with '-' are reserved`);
      }
      if (opts.steal && opts.ifAvailable) {
        throw domException('NotSupportedError', `'steal' and 'ifAvailable' cannot be used together`);
      }
      if (opts.steal && opts.mode !== 'exclusive') {
        throw domException('NotSupportedError', `'steal' is only for mode 'exclusive'`);
      }
      if (opts.signal !== undefined && (opts.steal || opts.ifAvailable)) {
        throw domException('NotSupportedError', `'signal' cannot be used with 'steal' or 'ifAvailable'`);
      }
      if (opts.signal?.aborted) {
        throw opts.signal.reason ?? domException('AbortError', 'The lock request was aborted');
      }
      if (str.length > LOCK_NAME_MAX) {
        throw Object.assign(
          new RangeError(
            `The lock name is ${str.length} UTF-16 code units long; interlock's limit is ${LOCK_NAME_MAX}`,
          ),
          { code: 'ERR_OUT_OF_RANGE' },
        );
      }
      this.#client().request(str, opts.mode, opts.ifAvailable, opts.steal, {
        name: str,
        mode: opts.mode,
        callback: callback as LockGrantedCallback<unknown>,
        resolve,
        reject,
        signal: opts.signal,
      });
    });
  }

  /** Every held and pending request of this scope, in every process and thread. */
  query(): Promise<LockManagerSnapshot> {
    return new Promise((resolve) => resolve(this.#client().query()));
  }

  /** @internal Clients alive in this scope's table (tests). */
  liveClients(): number {
    return this.#client().liveClients();
  }

  /** `'LockManager'`, as the browser's class reports. */
  get [Symbol.toStringTag](): string {
    return 'LockManager';
  }
}

interface Converted {
  mode: LockMode;
  ifAvailable: boolean;
  steal: boolean;
  signal?: AbortSignal;
}

// The LockOptions dictionary, converted as WebIDL does (members in
// lexicographic order; booleans by truthiness; the enum and the interface
// type checked).
function convertOptions(options: unknown): Converted {
  if (options !== undefined && options !== null && typeof options !== 'object' && typeof options !== 'function') {
    throw new TypeError(`The "options" argument must be an object`);
  }
  const o = (options ?? {}) as Record<string, unknown>;
  const ifAvailable = Boolean(o.ifAvailable);
  const rawMode = o.mode;
  const mode = rawMode === undefined ? 'exclusive' : `${rawMode as string}`;
  if (mode !== 'exclusive' && mode !== 'shared') {
    throw new TypeError(`The provided value '${mode}' is not a valid enum value of type LockMode`);
  }
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`The "options.signal" property must be an instance of AbortSignal`);
  }
  const steal = Boolean(o.steal);
  return { mode, ifAvailable, steal, signal };
}

/** The manager for the default scope: every process and thread of this user. */
export const locks = new LockManager();
