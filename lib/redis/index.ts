// RedisLock: a lease on one Redis primary, renewed by a watchdog while held,
// with a fencing token from INCR on every grant. Waiters sleep on the lock's
// release channel (and, should the holder die, until its lease runs out):
// no polling on a fixed interval.
import { randomBytes } from 'node:crypto';
import { AbortError } from '../errors';
import type { Lockable } from '../lock';
import {
  bounded,
  type Grant,
  type RemoteHandle,
  RemoteLock,
  type RemoteLockOptions,
  remoteTimeoutError,
  serverError,
  validateName,
  type Wait,
} from '../remote';
import { invalidType, outOfRange, validateObject } from '../validate';
import { connectionOf, type RedisConnection, type Script, script } from './client';
import { Wakeups } from './wakeups';

export { type RemoteAcquireOptions, RemoteHandle } from '../remote';

/** The options of `new RedisLock()`. */
export interface RedisLockOptions extends RemoteLockOptions {
  /** Lease in milliseconds, renewed every ttl/3 while held. Default 10000. */
  ttl?: number;
  /** Prefix of the lock's keys and channel. Default 'interlock:'. */
  prefix?: string;
}

// KEYS: lock, token counter. ARGV: owner, ttl. The counter is read back with
// GET so the token crosses Lua (whose numbers are doubles) as an exact string.
const ACQUIRE: Script = script(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('INCR', KEYS[2])
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}`);

// KEYS: lock. ARGV: owner, ttl.
const RENEW = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`);

// KEYS: lock. ARGV: owner, channel. Only the holder deletes; the next
// waiter hears of it at once.
const RELEASE = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '')
  return 1
end
return 0`);

const MIN_TTL = 30; // the watchdog renews every ttl/3; below this, timer jitter alone loses leases
const MAX_TTL = 2 ** 31 - 1;
// A lease counts from the moment the renewal was sent, less a margin for
// the server's clock running faster than ours.
const DRIFT = 0.01;

// An owner is unique among every client of the server: random per thread
// (each worker loads this module anew), counted per grant.
const OWNER_PREFIX = `${randomBytes(12).toString('base64url')}:`;
let owners = 0;

const wakeupsByClient = new WeakMap<object, Wakeups>();

/**
 * An exclusive lock held as a lease on one Redis primary, for holders on
 * different machines. The lease is renewed while held; the handle's
 * `signal` aborts when a renewal fails, and its fencing token lets the
 * store written to refuse a holder that lost the lease.
 */
export class RedisLock extends RemoteLock {
  /** The lease in milliseconds: how long a dead holder keeps the lock. */
  readonly ttl: number;
  protected readonly shared = false;
  readonly #conn: RedisConnection;
  readonly #wakeups: Wakeups;
  readonly #key: string;
  readonly #tokenKey: string;
  readonly #channel: string;
  readonly #renewEvery: number;

  /**
   * Takes the node-redis (v4+) or ioredis client you already have; one
   * more connection per client is opened for the release channel when the
   * first wait subscribes. Nothing is sent until the first acquire().
   */
  constructor(client: unknown, name: string, options?: RedisLockOptions) {
    const conn = connectionOf(client);
    validateName(name);
    const opts = validateObject(options, 'options');
    const ttl = opts.ttl ?? 10_000;
    if (typeof ttl !== 'number') throw invalidType('options.ttl', 'of type number', ttl);
    if (!Number.isInteger(ttl) || ttl < MIN_TTL || ttl > MAX_TTL) {
      throw outOfRange('options.ttl', `an integer >= ${MIN_TTL} && <= ${MAX_TTL} (milliseconds)`, ttl);
    }
    const prefix = opts.prefix ?? 'interlock:';
    if (typeof prefix !== 'string') throw invalidType('options.prefix', 'of type string', prefix);
    super('redis', name, opts);
    this.ttl = ttl;
    this.#renewEvery = Math.floor(ttl / 3);
    this.#conn = conn;
    let wakeups = wakeupsByClient.get(client as object);
    if (wakeups === undefined) {
      wakeups = new Wakeups(conn);
      wakeupsByClient.set(client as object, wakeups);
    }
    this.#wakeups = wakeups;
    // One hash tag: in a cluster all three live on one slot.
    this.#key = `${prefix}{${name}}`;
    this.#tokenKey = `${this.#key}:token`;
    this.#channel = `${this.#key}:released`;
  }

  /**
   * Runs a script (EVALSHA, or EVAL once when the server has not seen it),
   * rejecting with ERR_LOCK_SERVER when it fails or gets no reply within the ttl.
   */
  #run(s: Script, keys: string[], args: string[]): Promise<unknown> {
    const send = this.#conn.send;
    const tail = [`${keys.length}`, ...keys, ...args];
    return new Promise((resolve, reject) => {
      // A whole-number delay: Node keeps one timer list per delay, so every
      // command of every lock with this ttl shares one.
      const timer = setTimeout(
        () => reject(serverError('Redis', this.name, new Error(`no reply within ${this.ttl} ms`))),
        this.ttl,
      );
      timer.unref(); // a pending command keeps its socket busy; the bound itself must not hold the process
      const done = (reply: unknown) => {
        clearTimeout(timer);
        resolve(reply);
      };
      const failed = (err: unknown) => {
        clearTimeout(timer);
        reject(serverError('Redis', this.name, err));
      };
      send(['EVALSHA', s.sha, ...tail]).then(done, (err) => {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT'))
          send(['EVAL', s.source, ...tail]).then(done, failed);
        else failed(err);
      });
    });
  }

  protected async grant(wait: Wait): Promise<Grant> {
    const owner = `${OWNER_PREFIX}${++owners}`;
    const keys = [this.#key, this.#tokenKey];
    const args = [owner, `${this.ttl}`];
    const onTimeout = () => remoteTimeoutError(this.name, wait.timeoutMs, 'EVALSHA');
    let woken = false;
    let wake: () => void = () => {
      woken = true;
    };
    let stop: (() => void) | undefined;
    try {
      for (;;) {
        // Not cut short by the deadline or the signal: a grant that arrives
        // after its waiter gave up is given back before the rejection.
        const sentAt = performance.now();
        const reply = (await this.#run(ACQUIRE, keys, args)) as unknown[];
        const granted = Number(reply[0]) === 1;
        const late = wait.signal?.aborted ? new AbortError(wait.signal.reason) : performance.now() >= wait.deadline;
        if (late !== false) {
          if (granted) await this.#ungrant(owner);
          throw late === true ? onTimeout() : late;
        }
        if (granted) return this.#hold(owner, BigInt(String(reply[1])), sentAt, wait);
        if (stop === undefined) {
          // Listen, then look again: a release between the two is not missed.
          stop = await bounded(
            this.#wakeups
              .listen(this.#channel, () => wake())
              .catch((err) => {
                throw serverError('Redis', this.name, err);
              }),
            wait,
            onTimeout,
            (s) => s(),
          );
          continue;
        }
        // Asleep until a release is published, or the holder's lease runs
        // out (it may have died without releasing).
        const pttl = Number(reply[1]);
        const sleep = new Promise<void>((resolve) => {
          if (woken) return resolve();
          const timer = setTimeout(resolve, pttl > 0 ? pttl + 1 : 1);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        await bounded(sleep, wait, onTimeout, () => {});
        woken = false;
        wake = () => {
          woken = true;
        };
      }
    } finally {
      stop?.();
    }
  }

  #hold(owner: string, token: bigint, sentAt: number, wait: Wait): Grant {
    const ttl = this.ttl;
    let expires = sentAt + ttl * (1 - DRIFT);
    // Between renewals one timer runs: the next renewal, which also notices
    // a lease that ran out while the process was paused (SIGSTOP, a long GC,
    // a blocked loop). A second one, the lease's end, runs only while a
    // renewal is unconfirmed.
    let renewTimer: NodeJS.Timeout | undefined;
    let expiryTimer: NodeJS.Timeout | undefined;
    let held = true;
    const stop = () => {
      held = false;
      clearTimeout(renewTimer);
      clearTimeout(expiryTimer);
    };
    const lose = (why: string, cause?: unknown) => {
      stop();
      wait.lose(why, cause);
    };
    const renew = () => {
      const at = performance.now();
      if (at >= expires) return lose(`its ${ttl} ms lease ran out before it could be renewed`);
      clearTimeout(expiryTimer);
      expiryTimer = setTimeout(() => lose(`its ${ttl} ms lease ran out before a renewal was confirmed`), expires - at);
      expiryTimer.unref();
      this.#run(RENEW, [this.#key], [owner, `${ttl}`]).then(
        (reply) => {
          if (!held) return;
          if (Number(reply) !== 1) return lose('the key expired or another owner holds it');
          clearTimeout(expiryTimer);
          expires = Math.max(expires, at + ttl * (1 - DRIFT));
          schedule();
        },
        () => held && schedule(), // unsure, not lost: the lease's end stays armed
      );
    };
    const schedule = () => {
      renewTimer = setTimeout(renew, this.#renewEvery);
      renewTimer.unref();
    };
    schedule();
    return {
      token,
      ungrant: () => {
        stop();
        return this.#ungrant(owner);
      },
    };
  }

  async #ungrant(owner: string): Promise<void> {
    await this.#run(RELEASE, [this.#key], [owner, this.#channel]);
  }
}

true satisfies RedisLock extends Lockable<RemoteHandle> ? true : never;
