// The two Redis clients people use, behind the three things RedisLock needs:
// run a script, and be woken by a channel. node-redis (v4+) and ioredis
// differ in every name, so each gets a small adapter; nothing else in the
// lock knows which one it has.
import { createHash } from 'node:crypto';
import { invalidType, invalidValue } from '../validate';

export interface Script {
  source: string;
  sha: string;
}

export function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

type Send = (args: string[]) => Promise<unknown>;

interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  isOpen: boolean;
  isPubSubActive?: boolean;
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  unsubscribe(channel: string, listener?: (message: string, channel: string) => void): Promise<unknown>;
  on(event: 'error' | 'end', listener: (err: unknown) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
  unref?(): void;
  ref?(): void;
  destroy?(): void;
  disconnect?(): Promise<void>;
}

interface IoRedisLike {
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(): IoRedisLike;
  status: string;
  mode?: string;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: string, listener: (...args: never[]) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
  stream?: { unref?(): void; ref?(): void };
  disconnect(): void;
}

/** A connection in subscriber mode, shared by every wait on one client. */
interface SubscriberConnection {
  subscribe(channel: string, onMessage: (message: string) => void): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Whether the connection may keep the process alive. */
  hold(yes: boolean): void;
  close(): void;
}

export interface RedisConnection {
  send: Send;
  subscriber(onError: () => void): Promise<SubscriberConnection>;
  /** Calls `listener` once when the user's client closes. */
  onEnd(listener: () => void): void;
}

function isNodeRedis(c: object): c is NodeRedisLike {
  const r = c as Partial<NodeRedisLike>;
  return typeof r.sendCommand === 'function' && typeof r.duplicate === 'function' && typeof r.isOpen === 'boolean';
}

function isIoRedis(c: object): c is IoRedisLike {
  const r = c as Partial<IoRedisLike>;
  return typeof r.call === 'function' && typeof r.duplicate === 'function' && typeof r.status === 'string';
}

function nodeRedisSubscriber(client: NodeRedisLike, onError: () => void): Promise<SubscriberConnection> {
  const sub = client.duplicate();
  const listeners = new Map<string, (message: string) => void>();
  sub.on('error', onError); // it reconnects and resubscribes on its own
  const close = () => {
    if (typeof sub.destroy === 'function') sub.destroy();
    else sub.disconnect?.().catch(() => {});
  };
  return sub.connect().then(
    () => ({
      async subscribe(channel, onMessage) {
        const listener = (message: string) => onMessage(message);
        listeners.set(channel, listener);
        await sub.subscribe(channel, listener);
      },
      async unsubscribe(channel) {
        const listener = listeners.get(channel);
        listeners.delete(channel);
        await sub.unsubscribe(channel, listener);
      },
      hold(yes) {
        if (yes) sub.ref?.();
        else sub.unref?.();
      },
      close,
    }),
    (err) => {
      close();
      throw err;
    },
  );
}

function ioRedisSubscriber(client: IoRedisLike, onError: () => void): Promise<SubscriberConnection> {
  const sub = client.duplicate();
  const listeners = new Map<string, (message: string) => void>();
  sub.on('error', onError);
  sub.on('message', ((channel: string, message: string) => listeners.get(channel)?.(message)) as (
    ...args: never[]
  ) => void);
  return Promise.resolve({
    async subscribe(channel, onMessage) {
      listeners.set(channel, onMessage);
      await sub.subscribe(channel);
    },
    async unsubscribe(channel) {
      listeners.delete(channel);
      await sub.unsubscribe(channel);
    },
    hold(yes) {
      if (yes) sub.stream?.ref?.();
      else sub.stream?.unref?.();
    },
    close: () => sub.disconnect(),
  });
}

/** Checks the client and adapts it; throws a TypeError naming what is wrong. */
export function connectionOf(client: unknown): RedisConnection {
  if (client === null || typeof client !== 'object') {
    throw invalidType('client', 'a node-redis (v4+) or ioredis client', client);
  }
  if (isNodeRedis(client)) {
    if (client.isPubSubActive === true) {
      throw invalidValue(
        'client',
        '[node-redis client]',
        'must not be in subscriber mode (pass the client, not a subscriber)',
      );
    }
    return {
      send: (args) => client.sendCommand(args),
      subscriber: (onError) => nodeRedisSubscriber(client, onError),
      onEnd: (listener) => client.once('end', listener),
    };
  }
  if (isIoRedis(client)) {
    if (client.mode !== undefined && client.mode !== 'normal') {
      throw invalidValue('client', `[ioredis client in ${client.mode} mode]`, 'must be in normal mode');
    }
    return {
      send: ([command, ...args]) => client.call(command as string, ...args),
      subscriber: (onError) => ioRedisSubscriber(client, onError),
      onEnd: (listener) => client.once('end', listener),
    };
  }
  throw invalidType('client', 'a node-redis (v4+) or ioredis client', client);
}
