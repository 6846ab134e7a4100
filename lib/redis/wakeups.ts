// Waiters sleep until a release hands them the lock and says so on their
// client's wake channel (the message is the waiter's owner id and the new
// token, "owner token"): one
// subscriber connection per client, one SUBSCRIBE per channel however many
// waiters listen. A channel stays subscribed for a moment after its last
// waiter leaves (a contended loop would otherwise pay SUBSCRIBE/UNSUBSCRIBE
// on every wait), with the connection unreferenced so it never keeps the
// process alive.
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './client';

const IDLE_MS = 2000;

type Subscriber = Awaited<ReturnType<RedisConnection['subscriber']>>;

/** Told which waiter a message is for; undefined: every waiter should look again. */
type Wake = (to: string | undefined) => void;

export class Wakeups {
  /** Names this client's waiters (and its wake channel); random, so unique among the server's clients. */
  readonly tag = randomBytes(12).toString('base64url');
  readonly #conn: RedisConnection;
  #sub: Promise<Subscriber> | undefined;
  readonly #channels = new Map<string, { waiters: Set<Wake>; ready: Promise<void>; live: boolean }>();
  #listening = 0;
  #idle: NodeJS.Timeout | undefined;

  constructor(conn: RedisConnection) {
    this.#conn = conn;
    conn.onEnd(() => this.#closeOnEnd());
  }

  // The user closed their client: its subscriber goes too, at once.
  #closeOnEnd(): void {
    const sub = this.#sub;
    this.#sub = undefined;
    this.#channels.clear();
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    sub?.then(
      (s) => s.close(),
      () => {},
    );
  }

  /**
   * Whether `channel` is subscribed now: a waiter may then listen before it
   * asks the server, and needs no second request once queued.
   */
  live(channel: string): boolean {
    return this.#channels.get(channel)?.live === true;
  }

  /** Calls `wake` with every message published on `channel` until the returned stop(). */
  async listen(channel: string, wake: Wake): Promise<() => void> {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    const sub = this.#subscriber();
    let entry = this.#channels.get(channel);
    if (entry === undefined) {
      const waiters = new Set<Wake>();
      const ready = sub.then((s) => s.subscribe(channel, (message) => this.#wake(channel, message)));
      const made = { waiters, ready, live: false };
      entry = made;
      this.#channels.set(channel, made);
      ready.then(
        () => {
          made.live = true;
        },
        () => {
          if (this.#channels.get(channel) === made) this.#channels.delete(channel);
        },
      );
    }
    entry.waiters.add(wake);
    if (this.#listening++ === 0)
      sub.then(
        (s) => s.hold(true),
        () => {},
      );
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      entry.waiters.delete(wake);
      if (--this.#listening === 0) this.#rest();
    };
    try {
      await entry.ready;
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
  }

  #subscriber(): Promise<Subscriber> {
    if (this.#sub === undefined) {
      const sub = this.#conn.subscriber(() => this.#wakeAll());
      this.#sub = sub;
      sub.catch(() => {
        if (this.#sub === sub) this.#sub = undefined;
      });
    }
    return this.#sub;
  }

  #wake(channel: string, message: string): void {
    for (const wake of this.#channels.get(channel)?.waiters ?? []) wake(message);
  }

  // A connection error may have swallowed a release: let every waiter look again.
  #wakeAll(): void {
    for (const { waiters } of this.#channels.values()) for (const wake of waiters) wake(undefined);
  }

  #rest(): void {
    const sub = this.#sub;
    sub?.then(
      (s) => s.hold(false),
      () => {},
    );
    this.#idle = setTimeout(() => {
      this.#idle = undefined;
      if (this.#listening > 0 || this.#sub !== sub) return;
      this.#sub = undefined;
      this.#channels.clear();
      sub?.then(
        (s) => s.close(),
        () => {},
      );
    }, IDLE_MS);
    this.#idle.unref();
  }
}
