// RedisLock: a lease on one Redis primary, renewed by a watchdog while held,
// with a fencing token from INCR on every grant. Waiters queue in arrival
// order in a list beside the key; a release hands the lock straight to the
// first live waiter and wakes only that one (on its client's wake channel),
// telling it its token: no polling, no herd of waiters racing for every
// release, and no request from the waiter it is handed to.

import { Alarm, type Deadline, mono } from '../alarm';
import { AbortError, LockError } from '../errors';
import type { Lockable } from '../lock';
import {
  bounded,
  type Grant,
  type Passing,
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

// Every script but RENEW: KEYS lock, token counter, queue (owners in arrival
// order), waiters (owner -> "deadline:ttl", server milliseconds; a waiter
// that stops looking is skipped once its deadline passes). ARGV owner, ttl,
// wake prefix (an owner "TAG/N" is woken on the channel prefix..TAG). The
// counter is read back with GET so the token crosses Lua (whose numbers are
// doubles) as an exact string.
const QUEUE = `
local function now()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
-- Gives the lock to the first live waiter (its lease starts now) and wakes
-- it with "owner token", so it holds without asking; frees it when there is
-- none. The clock is read only when there is a waiter to judge: an
-- uncontended release runs three commands.
local function pass()
  local at
  while true do
    local head = redis.call('LPOP', KEYS[3])
    if not head then
      redis.call('DEL', KEYS[1])
      return
    end
    local entry = redis.call('HGET', KEYS[4], head)
    redis.call('HDEL', KEYS[4], head)
    if entry then
      at = at or now()
      local deadline, ttl = string.match(entry, '^(%d+):(%d+)$')
      if tonumber(deadline) > at then
        redis.call('SET', KEYS[1], head, 'PX', ttl)
        redis.call('INCR', KEYS[2])
        local token = redis.call('GET', KEYS[2])
        redis.call('PUBLISH', ARGV[3] .. string.match(head, '^(.*)/'), head .. ' ' .. token)
        return
      end
    end
  end
end
`;

// Granted when free with nobody live queued ahead, or when a release handed
// it over; otherwise queued once (each call renews the waiter's deadline).
// Replies {1, token} or {0, the holder's pttl, the token counter}: a wake-up
// naming a larger token was granted after this reply, so its lease is newer.
const ACQUIRE: Script = script(`${QUEUE}
local owner, ttl = ARGV[1], tonumber(ARGV[2])
-- Free with an empty queue, the uncontended case: four commands, not five
-- (a script's every command costs the server about as much as the script).
local queued = redis.call('LLEN', KEYS[3]) > 0
if not queued and redis.call('SET', KEYS[1], owner, 'NX', 'PX', ttl) then
  redis.call('INCR', KEYS[2])
  return {1, redis.call('GET', KEYS[2])}
end
local holder = redis.call('GET', KEYS[1])
if not holder and queued then
  pass() -- the holder's lease ran out: the queue's turn
  holder = redis.call('GET', KEYS[1])
end
if holder == owner then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, redis.call('GET', KEYS[2])}
end
if not holder then
  redis.call('SET', KEYS[1], owner, 'PX', ttl)
  redis.call('INCR', KEYS[2])
  return {1, redis.call('GET', KEYS[2])}
end
if redis.call('HEXISTS', KEYS[4], owner) == 0 then
  redis.call('RPUSH', KEYS[3], owner)
end
redis.call('HSET', KEYS[4], owner, string.format('%d:%d', now() + ttl, ttl))
for i = 3, 4 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}`);

// KEYS: lock. ARGV: owner, ttl.
const RENEW = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`);

// Only the holder releases; the next live waiter gets the lock at once.
const RELEASE: Script = script(`${QUEUE}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
pass()
return 1`);

// A holder of a lease that has served its machine long enough (local: true)
// gives it up in one round trip: to the first live waiter of the queue (most
// likely another machine) if there is one, else as a new grant, under a new
// owner (ARGV[4]) and token, for the next holder of its machine. Replies {0}
// when it was not the holder or the queue got the lock, else {1, token}.
const REGRANT: Script = script(`${QUEUE}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
if redis.call('LLEN', KEYS[3]) > 0 then
  pass()
  if redis.call('GET', KEYS[1]) then return {0} end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
redis.call('INCR', KEYS[2])
return {1, redis.call('GET', KEYS[2])}`);

// A waiter that gives up leaves the queue, and passes the lock on should a
// release have handed it over meanwhile.
const CANCEL: Script = script(`${QUEUE}
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then pass() end
return 1`);

const MIN_TTL = 30; // the watchdog renews every ttl/3; below this, timer jitter alone loses leases
const MAX_TTL = 2 ** 31 - 1;
// A lease counts from the moment the renewal was sent, less a margin for
// the server's clock running faster than ours.
const DRIFT = 0.01;

// Passing (local: true): a lease serves the holders of one machine for at
// most PASS_WINDOW_MS (or ttl/2, if shorter) from its server grant; then it
// goes back to the server, whose FIFO queue serves the other machines
// (REGRANT: a new grant for this machine only when none waits). So another
// machine waits at most that, and one hold, beyond its place. A window in
// time, not a count of holds: with 15 passes per grant, the REGRANT round
// trips were a third of the contended bench's time (a server that shares
// the CPUs with busy contenders answers late), and how long the others
// wait is what fairness is about. A pass number lives in the token's low
// bits, so a lease is passed at most MAX_PASSES times.
const PASS_WINDOW_MS = 20;
const PASS_BITS = 16n;
const MAX_PASSES = 2 ** 16 - 1;
// A record's times are CLOCK_MONOTONIC, shared by the machine's processes;
// its wall-clock twin must tell the same elapsed time within this, or the
// record's deadline is not believed (a runtime with a per-process clock, a
// time namespace) and the lease is confirmed with the server instead.
const CLOCK_SLACK_MS = 100;

/** A lease as one holder keeps it and passes it on. */
interface Lease {
  owner: string;
  /** The server's token counter at the grant; the handle's token is base << 16 | passes. */
  base: bigint;
  passes: number;
  /** mono() when the server granted it. */
  grantedAt: number;
  /** mono() until which it is certainly held (confirmed, less the drift margin). */
  expires: number;
}

// An owner is its client's wake tag (random) and a count: unique among
// every client of the server.
let owners = 0;

const wakeupsByClient = new WeakMap<object, Wakeups>();
// The server's run_id, per client: a record names its server, and a lease
// recorded by another server's client is confirmed with a renewal, never
// believed (two servers with a lock of one name, used from one machine).
const serverIdByClient = new WeakMap<object, Promise<string>>();

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
  readonly #keys: string[];
  readonly #wakePrefix: string;
  /** This client's wake channel: its waiters' wake-ups come there. */
  readonly #wakeChannel: string;
  readonly #renewEvery: number;
  readonly #serverId: () => Promise<string>;
  readonly #passes: boolean;
  /** Bounds this lock's commands and renews its leases. */
  readonly #alarm = new Alarm();

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
    super('redis', name, opts, prefix);
    this.ttl = ttl;
    this.#renewEvery = Math.floor(ttl / 3);
    this.#conn = conn;
    let wakeups = wakeupsByClient.get(client as object);
    if (wakeups === undefined) {
      wakeups = new Wakeups(conn);
      wakeupsByClient.set(client as object, wakeups);
    }
    this.#wakeups = wakeups;
    this.#passes = opts.local === true;
    this.#serverId = () => {
      let id = serverIdByClient.get(client as object);
      if (id === undefined) {
        id = conn.send(['INFO', 'server']).then((info) => {
          const runId = /run_id:(\w+)/.exec(String(info))?.[1];
          if (runId === undefined) throw new Error('INFO server has no run_id');
          return runId;
        });
        // Asked again 10 s after a failure, not at every grant (a server
        // that refuses INFO would otherwise cost a command per acquisition).
        id.catch(() => {
          const retry = setTimeout(() => {
            if (serverIdByClient.get(client as object) === id) serverIdByClient.delete(client as object);
          }, 10_000);
          retry.unref();
        });
        serverIdByClient.set(client as object, id);
      }
      return id;
    };
    // One hash tag: in a cluster all four live on one slot.
    this.#key = `${prefix}{${name}}`;
    this.#keys = [this.#key, `${this.#key}:token`, `${this.#key}:queue`, `${this.#key}:waiters`];
    this.#wakePrefix = `${prefix}wake:`;
    this.#wakeChannel = this.#wakePrefix + wakeups.tag;
  }

  /** `work`, or ERR_LOCK_SERVER when it has no reply within the ttl (a late value goes to `late`). */
  #within<T>(work: Promise<T>, late: (value: T) => void): Promise<T> {
    return bounded(
      work,
      { deadline: performance.now() + this.ttl, signal: undefined },
      () => serverError('Redis', this.name, new Error(`no reply within ${this.ttl} ms`)),
      late,
      this.#alarm, // a pending command keeps its socket busy; the bound itself must not hold the process
    );
  }

  /** Runs a script: EVALSHA, or EVAL once when the server has not seen it. */
  #run(s: Script, keys: string[], args: string[]): Promise<unknown> {
    const send = this.#conn.send;
    const tail = [`${keys.length}`, ...keys, ...args];
    const failed = (err: unknown) => {
      throw serverError('Redis', this.name, err);
    };
    const work = send(['EVALSHA', s.sha, ...tail]).catch((err) =>
      err instanceof Error && err.message.startsWith('NOSCRIPT')
        ? send(['EVAL', s.source, ...tail]).catch(failed)
        : failed(err),
    );
    return this.#within(work, () => {});
  }

  protected async grant(wait: Wait): Promise<Grant> {
    // Asked once per client, beside the first grant: the first pass then need not wait for it.
    if (this.#passes) this.#serverId().catch(() => {});
    const wakeups = this.#wakeups;
    const owner = `${wakeups.tag}/${++owners}`;
    const args = [owner, `${this.ttl}`, this.#wakePrefix];
    const onTimeout = () => remoteTimeoutError(this.name, wait.timeoutMs, 'EVALSHA');
    // What the wake channel said: the largest token a release handed this
    // waiter, and whether to ask the server again (a connection error may
    // have swallowed a message).
    let handed = 0n;
    let again = false;
    let wake: () => void = () => {};
    const hear = (message: string | undefined) => {
      if (message === undefined) again = true;
      else {
        const [to, token] = message.split(' ');
        if (to !== owner) return;
        if (token !== undefined && /^\d{1,30}$/.test(token)) {
          const t = BigInt(token);
          if (t > handed) handed = t;
        } else again = true;
      }
      wake();
    };
    const listen = async () => {
      // A SUBSCRIBE the server never answers is a server error too.
      const listening = wakeups.listen(this.#wakeChannel, hear).catch((err) => {
        throw serverError('Redis', this.name, err);
      });
      return bounded(
        this.#within(listening, (s) => s()),
        wait,
        onTimeout,
        (s) => s(),
      );
    };
    // Subscribed already (a contended loop): listen first, so that one
    // request queues this waiter and the release's message grants it.
    let stop: (() => void) | undefined = wakeups.live(this.#wakeChannel) ? await listen() : undefined;
    let queued = false;
    try {
      for (;;) {
        const sentAt = mono();
        again = false;
        const reply = (await this.#run(ACQUIRE, this.#keys, args)) as unknown[];
        // Not cut short by the deadline or the signal: a grant that arrives
        // after its waiter gave up is passed on (below) before the rejection.
        queued = true;
        const late = wait.signal?.aborted ? new AbortError(wait.signal.reason) : performance.now() >= wait.deadline;
        if (late !== false) throw late === true ? onTimeout() : late;
        if (Number(reply[0]) === 1) {
          queued = false;
          return this.#hold(this.#lease(owner, BigInt(String(reply[1])), sentAt), wait);
        }
        if (stop === undefined) {
          // Listen, then look again: a handover between the two is not missed.
          stop = await listen();
          continue;
        }
        // A token above the counter this reply saw was granted after the
        // request was sent: that lease is this waiter's, and it runs out no
        // sooner than a lease counted from `sentAt`. A smaller one is an
        // old message (a lease since run out): the server is asked again.
        const counter = BigInt(String(reply[2] ?? '0'));
        // Asleep until a release hands the lock over, the holder's lease
        // runs out (it may have died), or this waiter's own place in the
        // queue needs renewing.
        if (handed <= counter && !again) {
          const pttl = Number(reply[1]);
          const sleep = new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(pttl > 0 ? pttl + 1 : 1, this.#renewEvery));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          await bounded(sleep, wait, onTimeout, () => {});
          wake = () => {};
        }
        if (handed > counter) {
          queued = false;
          const lease = this.#lease(owner, handed, sentAt);
          if (lease.expires > mono()) return this.#hold(lease, wait);
          queued = true; // too old to trust (a stalled loop): the server says
        }
      }
    } catch (err) {
      // Out of the queue (and the lock passed on, if handed over meanwhile)
      // before the rejection; after a server error, without waiting for it.
      if (queued) {
        const left = this.#run(CANCEL, this.#keys, args);
        if (err instanceof LockError && err.code === 'ERR_LOCK_SERVER') left.catch(() => {});
        else await left.catch(() => {});
      }
      throw err;
    } finally {
      stop?.();
    }
  }

  /** A fresh server grant to `owner`, counted from `sentAt`, when its request was sent. */
  #lease(owner: string, base: bigint, sentAt: number): Lease {
    return { owner, base, passes: 0, grantedAt: sentAt, expires: sentAt + this.ttl * (1 - DRIFT) };
  }

  #hold(lease: Lease, wait: Wait): Grant {
    const ttl = this.ttl;
    const { owner } = lease;
    let expires = lease.expires;
    // Between renewals one deadline waits: the next renewal, which also
    // notices a lease that ran out while the process was paused (SIGSTOP, a
    // long GC, a blocked loop). A timer for the lease's end runs only while
    // a renewal is unconfirmed.
    let renewal: Deadline | undefined;
    let expiryTimer: NodeJS.Timeout | undefined;
    let held = true;
    let unsure = false; // a renewal is unconfirmed: the lease is not passed on
    const stop = () => {
      held = false;
      if (renewal !== undefined) this.#alarm.cancel(renewal);
      clearTimeout(expiryTimer);
    };
    const lose = (why: string, cause?: unknown) => {
      stop();
      wait.lose(why, cause);
    };
    const renew = () => {
      const at = mono();
      if (at >= expires) return lose(`its ${ttl} ms lease ran out before it could be renewed`);
      unsure = true;
      clearTimeout(expiryTimer);
      expiryTimer = setTimeout(() => lose(`its ${ttl} ms lease ran out before a renewal was confirmed`), expires - at);
      expiryTimer.unref();
      this.#run(RENEW, [this.#key], [owner, `${ttl}`]).then(
        (reply) => {
          if (!held) return;
          if (Number(reply) !== 1) return lose('the key expired or another owner holds it');
          clearTimeout(expiryTimer);
          unsure = false;
          expires = Math.max(expires, at + ttl * (1 - DRIFT));
          schedule(this.#renewEvery);
        },
        () => held && schedule(this.#renewEvery), // unsure, not lost: the lease's end stays armed
      );
    };
    const schedule = (ms: number) => {
      renewal = this.#alarm.add(mono() + ms, renew);
    };
    // A fresh lease is renewed after ttl/3; a passed one when it is as old.
    schedule(Math.max(0, Math.min(this.#renewEvery, expires - mono() - (ttl * (1 - DRIFT) - this.#renewEvery))));
    // Who holds it at the server (REGRANT names a new owner), or null once
    // REGRANT gave it to the server's queue: then there is nothing to release.
    let holder: string | null = owner;
    return {
      token: (lease.base << PASS_BITS) | BigInt(lease.passes),
      ungrant: () => {
        stop();
        return holder === null ? Promise.resolve() : this.#ungrant(holder);
      },
      pass: async () => {
        // Never a lost lease or one whose renewal is unconfirmed.
        const passable = () => held && !unsure && expires - mono() >= ttl / 3;
        if (!passable()) return undefined;
        const server = await this.#serverId().catch(() => undefined);
        if (server === undefined || !passable()) return undefined;
        stop();
        // Served its machine long enough (fairness to the others): the
        // server's queue first, or a new grant in the same round trip.
        if (lease.passes >= MAX_PASSES || mono() - lease.grantedAt >= Math.min(PASS_WINDOW_MS, ttl / 2)) {
          const next = await this.#regrant(owner);
          if (next === null) holder = null;
          if (next === null || next === undefined) return undefined;
          holder = next.owner; // a record not written is released under this name
          return this.#record(server, next, 0);
        }
        return this.#record(server, lease, lease.passes + 1, expires);
      },
    };
  }

  /** The record of `lease` for the next local holder, as its `passes`th holder. */
  #record(server: string, lease: Lease, passes: number, expires = lease.expires): string {
    return JSON.stringify({
      v: 1,
      key: this.#key,
      server,
      owner: lease.owner,
      base: `${lease.base}`,
      passes,
      grantedAt: lease.grantedAt,
      expires,
      mono: mono(),
      wall: Date.now(),
    });
  }

  /**
   * Gives up `owner`'s lease by REGRANT: a new lease when the server had
   * nobody waiting, null when the lock went to its queue or was no longer
   * held, undefined when the server failed (then a release follows).
   */
  async #regrant(owner: string): Promise<Lease | null | undefined> {
    const next = `${this.#wakeups.tag}/${++owners}`;
    const sentAt = mono();
    let reply: unknown[];
    try {
      reply = (await this.#run(REGRANT, this.#keys, [owner, `${this.ttl}`, this.#wakePrefix, next])) as unknown[];
    } catch {
      return undefined;
    }
    if (Number(reply[0]) !== 1) return null;
    return this.#lease(next, BigInt(String(reply[1])), sentAt);
  }

  async #ungrant(owner: string): Promise<void> {
    await this.#run(RELEASE, this.#keys, [owner, `${this.ttl}`, this.#wakePrefix]);
  }

  protected override passing(): Passing {
    return {
      mine: (record) => {
        const r = parseRecord(record);
        // Unreadable (a writer killed mid-write): cleared, its lease runs out.
        return r === undefined || r.key === this.#key;
      },
      adopt: (record, wait) => this.#adopt(record, wait),
      drop: async (record) => {
        const r = parseRecord(record);
        if (r !== undefined) await this.#ungrant(r.owner);
      },
    };
  }

  /** A passed lease as this holder's grant: no command while comfortably valid, else one renewal. */
  async #adopt(record: string, wait: Wait): Promise<Grant | undefined> {
    const r = parseRecord(record);
    if (r === undefined) return undefined;
    // A lease of another server (one with a lock of this name too, used
    // from this machine) is confirmed with a renewal, never believed.
    const server = await this.#serverId().catch(() => undefined);
    const now = mono();
    const believed =
      r.server === server && now >= r.mono && Math.abs(now - r.mono - (Date.now() - r.wall)) <= CLOCK_SLACK_MS;
    const lease: Lease = {
      owner: r.owner,
      base: r.base,
      passes: r.passes,
      grantedAt: believed ? r.grantedAt : Number.NEGATIVE_INFINITY, // unknown: passed no further
      expires: believed ? r.expires : Number.NEGATIVE_INFINITY,
    };
    if (lease.expires - now < this.ttl / 3) {
      const sentAt = mono();
      const renewed = Number(await this.#run(RENEW, [this.#key], [r.owner, `${this.ttl}`])) === 1;
      if (!renewed) return undefined; // ran out (or restarted server): a grant from the server then
      lease.expires = sentAt + this.ttl * (1 - DRIFT);
    }
    const late = wait.signal?.aborted ? new AbortError(wait.signal.reason) : performance.now() >= wait.deadline;
    if (late !== false) {
      await this.#ungrant(r.owner);
      throw late === true ? remoteTimeoutError(this.name, wait.timeoutMs, 'EVALSHA') : late;
    }
    return this.#hold(lease, wait);
  }
}

/** A lease record as Grant.pass() wrote it, or undefined when it is not one. */
function parseRecord(
  text: string,
): (Omit<Lease, 'base'> & { base: bigint; key: string; server: string; mono: number; wall: number }) | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(text);
  } catch {
    return undefined;
  }
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (r === null || typeof r !== 'object' || r.v !== 1) return undefined;
  if (typeof r.key !== 'string' || typeof r.server !== 'string' || typeof r.owner !== 'string') return undefined;
  if (typeof r.base !== 'string' || !/^\d{1,30}$/.test(r.base)) return undefined;
  if (!Number.isInteger(r.passes) || (r.passes as number) < 0 || (r.passes as number) > MAX_PASSES) return undefined;
  if (!finite(r.grantedAt) || !finite(r.expires) || !finite(r.mono) || !finite(r.wall)) return undefined;
  return {
    key: r.key,
    server: r.server,
    owner: r.owner,
    base: BigInt(r.base),
    passes: r.passes as number,
    grantedAt: r.grantedAt,
    expires: r.expires,
    mono: r.mono,
    wall: r.wall,
  };
}

true satisfies RedisLock extends Lockable<RemoteHandle> ? true : never;
