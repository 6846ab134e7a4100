// The counter in Redis, read with GET and written with SET: the very
// read-modify-write that loses updates unless a lock spans both commands.
// (INCR would be atomic on its own; the point here is the lock.)
const { createClient } = require('redis');

// KEYS: counter, its fence. ARGV: token, value. Tokens compare as numbers
// (exact up to 2^53, far beyond any demo run).
const FENCED_SET = `
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < fence then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return 1`;

async function openRedisStore(url, key) {
  let connected = false;
  // Give up at startup after a few refusals (a wrong URL should fail fast);
  // once connected, keep reconnecting, as a server would.
  const reconnectStrategy = (retries, err) => (connected ? Math.min(50 * retries, 1000) : retries >= 3 ? err : 100);
  const client = createClient({ url, socket: { reconnectStrategy } });
  let failure = null;
  // The client retries on its own; remember why, for the next command's error.
  client.on('error', (err) => {
    failure = err;
  });
  try {
    await client.connect();
    connected = true;
  } catch (err) {
    client.destroy();
    throw new Error(`cannot connect to Redis at ${url}: ${err.message}`, { cause: err });
  }
  const command = async (fn) => {
    try {
      return await fn();
    } catch (err) {
      throw new Error(`Redis ${url}: ${err.message}${failure ? ` (${failure.message})` : ''}`, { cause: err });
    }
  };
  return {
    describe: `Redis ${url} key ${key}`,
    read: () => command(async () => Number((await client.get(key)) ?? 0)),
    // With a token (the lock has one), fenced: refused if a newer holder wrote.
    async write(value, token) {
      if (token === undefined) return command(() => client.set(key, String(value)));
      const applied = await command(() =>
        client.eval(FENCED_SET, { keys: [key, `${key}:fence`], arguments: [String(token), String(value)] }),
      );
      if (applied !== 1) throw new Error(`stale write refused: token ${token} is older than the last one applied`);
    },
    remove: () => command(() => client.del([key, `${key}:fence`])),
    // Nothing is left to flush (every write was awaited), and a graceful
    // close would wait forever on a Redis that went away.
    close() {
      if (client.isOpen) client.destroy();
    },
  };
}

module.exports = { openRedisStore };
