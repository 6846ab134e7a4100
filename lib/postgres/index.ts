// PgLock: a PostgreSQL advisory lock held by one connection for the whole
// hold, so the server itself frees it when that connection dies. Waiting is
// the server's own lock queue; `timeout` is lock_timeout, `signal` a cancel
// request; the fencing token comes from a sequence, read after the grant.
import { createHash } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
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
import { invalidType, validateBoolean, validateFunction, validateObject, validateTimeout } from '../validate';

export { type RemoteAcquireOptions, RemoteHandle } from '../remote';

/** The options of `new PgLock()`. */
export interface PgLockOptions extends RemoteLockOptions {
  /** pg_advisory_lock_shared: any number of shared holders, or one exclusive. */
  shared?: boolean;
}

/**
 * A named statement: the server parses and plans it once per connection
 * (pg keeps the names it prepared on each), not at every lock and unlock.
 */
interface PgStatement {
  name: string;
  text: string;
  values: string[];
}

/** The parts of a pg Client we use. */
interface PgConnection {
  query(query: string | PgStatement): Promise<PgResult | PgResult[]>;
  on(event: 'error' | 'end', listener: (err?: unknown) => void): unknown;
  removeListener(event: 'error' | 'end', listener: (err?: unknown) => void): unknown;
  processID: number | null;
  secretKey: number | null;
  host?: string;
  port?: number;
  /** Pool clients only: back to the pool, destroyed if given an error. */
  release?(err?: Error | boolean): void;
}

interface PgResult {
  rows: Record<string, unknown>[];
}

interface PgPool {
  connect(): Promise<PgConnection>;
  query: unknown;
  totalCount: number;
}

const SEQUENCE = 'interlock_token';
const LOCK_NOT_AVAILABLE = '55P03';
const QUERY_CANCELED = '57014';

/**
 * The advisory-lock key of a name: the first 8 bytes of SHA-256 over its
 * UTF-8 bytes, read as a signed big-endian 64-bit integer. Stable across
 * versions, so hand-written SQL can take the same lock.
 */
export function advisoryKey(name: string): bigint {
  return createHash('sha256').update(name, 'utf8').digest().readBigInt64BE(0);
}

function isPool(c: object): c is PgPool {
  const p = c as Partial<PgPool>;
  return typeof p.connect === 'function' && typeof p.query === 'function' && typeof p.totalCount === 'number';
}

function isClient(c: object): c is PgConnection {
  const p = c as Partial<PgConnection> & { connectionParameters?: unknown };
  return typeof p.query === 'function' && typeof p.on === 'function' && p.connectionParameters !== undefined;
}

function checkClient(client: unknown): PgPool | PgConnection {
  if (client !== null && typeof client === 'object' && (isPool(client) || isClient(client))) return client;
  throw invalidType('client', 'a pg Pool or Client', client);
}

/**
 * One turn at a time per (Client, key): session locks are re-entrant, so
 * two holds on one connection would both be granted. A Pool hands each
 * hold a connection of its own and needs no turns.
 */
const turns = new WeakMap<object, Map<bigint, Promise<void>>>();

async function takeTurn(client: object, key: bigint, wait: Wait, onTimeout: () => unknown): Promise<() => void> {
  let byKey = turns.get(client);
  if (byKey === undefined) {
    byKey = new Map();
    turns.set(client, byKey);
  }
  const previous = byKey.get(key) ?? Promise.resolve();
  let done = () => {};
  const mine = new Promise<void>((resolve) => {
    done = resolve;
  });
  const tail = previous.then(() => mine);
  byKey.set(key, tail);
  tail.then(() => {
    if (byKey.get(key) === tail) byKey.delete(key);
  });
  try {
    await bounded(previous, wait, onTimeout, () => {});
  } catch (err) {
    done();
    throw err;
  }
  return done;
}

const sequences = new WeakMap<object, Promise<void>>();
const sequenceMade = new WeakSet<object>();

/** Creates the token sequence once per pool or client (a race with another creator is fine). */
function ensureSequence(owner: object, conn: PgConnection): Promise<void> | undefined {
  if (sequenceMade.has(owner)) return undefined; // every later grant: no await, no extra turn of the loop
  let made = sequences.get(owner);
  if (made === undefined) {
    made = conn.query(`CREATE SEQUENCE IF NOT EXISTS ${SEQUENCE}`).then(
      () => {
        sequenceMade.add(owner);
      },
      (err) => {
        sequences.delete(owner);
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07') throw err;
      },
    );
    sequences.set(owner, made);
  }
  return made;
}

/** The protocol's CancelRequest on a connection of its own: stops the session's running query. */
function cancelQuery(conn: PgConnection): void {
  if (conn.processID === null || conn.secretKey === null || conn.port === undefined) return;
  const message = Buffer.alloc(16);
  message.writeInt32BE(16, 0);
  message.writeInt32BE(80877102, 4);
  message.writeInt32BE(conn.processID, 8);
  message.writeInt32BE(conn.secretKey, 12);
  const host = conn.host ?? 'localhost';
  const socket = host.startsWith('/')
    ? tcpConnect(`${host}/.s.PGSQL.${conn.port}`)
    : tcpConnect(conn.port, host === '' ? 'localhost' : host);
  socket.on('error', () => {}); // best effort: lock_timeout or the caller's timeout still bounds the wait
  socket.end(message);
}

function firstRow(result: PgResult | PgResult[]): Record<string, unknown> {
  const results = Array.isArray(result) ? result : [result];
  for (const r of results) if (r.rows.length > 0) return r.rows[0] as Record<string, unknown>;
  return {};
}

/**
 * A PostgreSQL advisory lock held on a connection kept for the hold, so the
 * server itself frees it when that connection dies. Waiting is the server's
 * lock queue; every grant carries a fencing token from a sequence.
 */
export class PgLock extends RemoteLock {
  protected readonly shared: boolean;
  /** The advisory-lock key: advisoryKey(name). */
  readonly key: bigint;
  readonly #client: PgPool | PgConnection;
  readonly #lockText: string;
  readonly #lockStatement: PgStatement;
  readonly #unlockStatement: PgStatement;

  /**
   * Takes a pg `Pool` (a connection is checked out per hold) or a `Client`
   * (holds of one name through it take turns: session locks are re-entrant).
   */
  constructor(client: unknown, name: string, options?: PgLockOptions) {
    const c = checkClient(client);
    validateName(name);
    const opts = validateObject(options, 'options');
    const shared = validateBoolean(opts.shared, 'options.shared', false);
    super('postgres', name, opts);
    this.#client = c;
    this.shared = shared;
    this.key = advisoryKey(name);
    const fn = shared ? 'pg_advisory_lock_shared' : 'pg_advisory_lock';
    const unlockFn = fn.replace('_lock', '_unlock');
    const token = `nextval('${SEQUENCE}')::text AS token`;
    // The timed wait's form: its transaction, for lock_timeout, makes it several statements.
    this.#lockText = `SELECT ${fn}(${this.key}), ${token}`;
    // The key is a parameter, so one statement of each serves every name
    // (a statement per name would grow each connection without bound).
    // Parsing and planning them at every hold was a tenth of an
    // uncontended acquire + release.
    const values = [`${this.key}`];
    this.#lockStatement = { name: `interlock:${fn}`, text: `SELECT ${fn}($1::bigint), ${token}`, values };
    this.#unlockStatement = { name: `interlock:${unlockFn}`, text: `SELECT ${unlockFn}($1::bigint)`, values };
  }

  /** A copy of `s` for one query: pg versions differ in what they write into the object they are given. */
  #statement(s: PgStatement): PgStatement {
    return { name: s.name, text: s.text, values: [...s.values] };
  }

  /** The key PgLock uses for `name` (see advisoryKey). */
  static key(name: string): bigint {
    return advisoryKey(validateName(name));
  }

  async #connection(wait: Wait, onTimeout: () => unknown): Promise<{ conn: PgConnection; done: () => void }> {
    const client = this.#client;
    if (isPool(client)) {
      const conn = await bounded(client.connect(), wait, onTimeout, (late) => late.release?.()).catch((err) => {
        throw err instanceof AbortError || (err as { code?: string }).code === 'ETIMEDOUT'
          ? err
          : serverError('PostgreSQL', this.name, err);
      });
      return { conn, done: () => {} };
    }
    return { conn: client, done: await takeTurn(client, this.key, wait, onTimeout) };
  }

  protected async grant(wait: Wait): Promise<Grant> {
    const fn = this.shared ? 'pg_advisory_lock_shared' : 'pg_advisory_lock';
    const onTimeout = () => remoteTimeoutError(this.name, wait.timeoutMs, fn);
    const { conn, done } = await this.#connection(wait, onTimeout);
    const giveBack = (broken?: Error) => {
      conn.release?.(broken ?? false);
      done();
    };
    let broken: Error | undefined;
    const onBroken = (err?: unknown) => {
      broken ??= err instanceof Error ? err : new Error('the connection ended');
      wait.lose('its connection to PostgreSQL was lost', broken);
    };
    conn.on('error', onBroken);
    conn.on('end', onBroken);
    const stopWatching = () => {
      conn.removeListener('error', onBroken);
      conn.removeListener('end', onBroken);
    };
    try {
      const token = await this.#lock(conn, fn, wait);
      return {
        token,
        ungrant: async () => {
          try {
            if (broken === undefined) await conn.query(this.#statement(this.#unlockStatement));
          } catch (err) {
            broken ??= err as Error;
            throw serverError('PostgreSQL', this.name, err);
          } finally {
            stopWatching();
            giveBack(broken);
          }
        },
      };
    } catch (err) {
      stopWatching();
      // After an abort a cancel request may still be in flight: never hand a
      // pooled connection it could hit to the next user.
      if (err instanceof AbortError) broken ??= err;
      // A failed wait may have lost its connection (the error event comes
      // after the query's rejection): only a clean timeout keeps it.
      else if ((err as { code?: string }).code !== 'ETIMEDOUT') broken ??= err as Error;
      giveBack(broken);
      throw err;
    }
  }

  /** Unlocks this lock's key on `conn`, once more if a cancel request in flight lands on the first try. */
  async #unlockDespiteCancel(conn: PgConnection): Promise<void> {
    await conn.query(this.#statement(this.#unlockStatement)).catch((e) => {
      if ((e as { code?: string }).code !== QUERY_CANCELED) throw e;
      return conn.query(this.#statement(this.#unlockStatement));
    });
  }

  /** Waits in the server's queue; resolves with the token once granted. */
  async #lock(conn: PgConnection, fn: string, wait: Wait): Promise<bigint> {
    const made = ensureSequence(this.#client, conn);
    if (made !== undefined) {
      await made.catch((err) => {
        throw serverError('PostgreSQL', this.name, err);
      });
    }
    // A session lock taken inside a transaction outlives its COMMIT; the
    // transaction only scopes lock_timeout to this one wait.
    const timed = wait.deadline !== Number.POSITIVE_INFINITY;
    const ms = Math.max(1, Math.ceil(wait.deadline - performance.now()));
    const query = timed
      ? `BEGIN; SET LOCAL lock_timeout = ${ms}; ${this.#lockText}; COMMIT`
      : this.#statement(this.#lockStatement);
    const { signal } = wait;
    if (signal?.aborted) throw new AbortError(signal.reason);
    const onAbort = () => cancelQuery(conn);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const row = firstRow(await conn.query(query));
      const token = BigInt(String(row.token));
      if (signal?.aborted) {
        // Granted as the cancel flew: give it back (the cancel may land on
        // this unlock instead: then once more), then report the abort.
        await this.#unlockDespiteCancel(conn);
        throw new AbortError(signal.reason);
      }
      return token;
    } catch (err) {
      if (err instanceof AbortError) throw err;
      const code = (err as { code?: string }).code;
      if (timed && (code === LOCK_NOT_AVAILABLE || code === QUERY_CANCELED)) await conn.query('ROLLBACK');
      if (code === QUERY_CANCELED && signal?.aborted) {
        // The cancel can land after pg_advisory_lock returned, within the
        // same statement (on nextval): the statement fails, but a session
        // lock outlives its statement and its transaction. Unlock (false,
        // with a warning, when it was not taken), so that nothing is held
        // when the abort is reported; the connection is dropped after it
        // anyway (grant()), which would free it only as its backend exits.
        await this.#unlockDespiteCancel(conn).catch(() => {});
        throw new AbortError(signal.reason);
      }
      if (code === LOCK_NOT_AVAILABLE) throw remoteTimeoutError(this.name, wait.timeoutMs, fn);
      throw serverError('PostgreSQL', this.name, err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Runs `fn` in a transaction that holds pg_advisory_xact_lock on `name`:
   * the server drops the lock at COMMIT or ROLLBACK, so it works on
   * transaction-pooled connections (PgBouncer). `fn` gets the connection
   * and the fencing token; it commits if `fn` resolves, rolls back if not.
   */
  static withTransaction<T>(
    client: unknown,
    name: string,
    fn: (tx: { client: unknown; token: bigint }) => T | Promise<T>,
    options?: { timeout?: number; shared?: boolean },
  ): Promise<T> {
    const c = checkClient(client);
    validateName(name);
    validateFunction(fn, 'fn');
    const opts = validateObject(options, 'options');
    const timeout = validateTimeout(opts.timeout, 'options.timeout');
    const shared = validateBoolean(opts.shared, 'options.shared', false);
    return inTransaction(c, name, fn, timeout, shared);
  }
}

async function inTransaction<T>(
  client: PgPool | PgConnection,
  name: string,
  fn: (tx: { client: unknown; token: bigint }) => T | Promise<T>,
  timeout: number,
  shared: boolean,
): Promise<T> {
  const lockFn = shared ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock';
  let conn: PgConnection;
  try {
    conn = isPool(client) ? await client.connect() : client;
    await ensureSequence(client, conn);
  } catch (err) {
    throw serverError('PostgreSQL', name, err);
  }
  let failed: Error | undefined;
  try {
    const setTimeoutSql = timeout >= 0 ? `SET LOCAL lock_timeout = ${Math.max(1, timeout)}; ` : '';
    let row: Record<string, unknown>;
    try {
      row = firstRow(
        await conn.query(
          `BEGIN; ${setTimeoutSql}SELECT ${lockFn}(${advisoryKey(name)}), nextval('${SEQUENCE}')::text AS token`,
        ),
      );
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => {});
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) throw remoteTimeoutError(name, timeout, lockFn);
      throw serverError('PostgreSQL', name, err);
    }
    try {
      const result = await fn({ client: conn, token: BigInt(String(row.token)) });
      await conn.query('COMMIT');
      return result;
    } catch (err) {
      await conn.query('ROLLBACK').catch((e) => {
        failed = e;
      });
      throw err;
    }
  } finally {
    conn.release?.(failed ?? false);
  }
}

true satisfies PgLock extends Lockable<RemoteHandle> ? true : never;
