// The server's settings: flags win over environment variables, which win
// over the defaults. The primary passes the result to every process and
// thread, so they all agree on where the counter and the lock are.
const { parseArgs } = require('node:util');

const LOCKS = ['file', 'mutex', 'redis', 'postgres', 'none'];

const USAGE = `Usage: npm run demo:server -- [options]     (or the environment variables shown)

  --processes N    PROCESSES   HTTP processes sharing the port (default 4)
  --threads M      THREADS     worker threads per process (default 4)
  --increments K   INCREMENTS  increments per GET /run (default 100)
  --sleep MS       SLEEP_MS    pause between read and write (default 30)
  --port P         PORT        0 picks a free port (default 0)
  --lock KIND      LOCK        file (FileLock), mutex (SharedMutex), redis (RedisLock),
                               postgres (PgLock) or none (default file)
  --redis URL      REDIS_URL   keep the counter in Redis instead of a file (needed by LOCK=redis)
                   REDIS_KEY   the Redis key (default interlock-demo:<pid>:counter)
  --postgres URL   POSTGRES_URL  the PostgreSQL of LOCK=postgres; the counter is a row there
  --hosts H        HOSTS       independent server trees ("machines") sharing only the store (default 1)
  --stop-with-stdin  STOP_WITH_STDIN=1  also stop when stdin ends (for supervisors and tests)
  -h, --help`;

function integer(name, text, min, max) {
  const n = Number(text);
  if (text === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, not '${text}'`);
  }
  return n;
}

/** Settings from argv and env; throws with a message naming the bad one. */
function parse(argv = process.argv.slice(2), env = process.env) {
  const { values } = parseArgs({
    args: argv,
    options: {
      processes: { type: 'string' },
      threads: { type: 'string' },
      increments: { type: 'string' },
      sleep: { type: 'string' },
      port: { type: 'string' },
      lock: { type: 'string' },
      redis: { type: 'string' },
      postgres: { type: 'string' },
      hosts: { type: 'string' },
      'stop-with-stdin': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true };
  const pick = (flag, variable, fallback) => values[flag] ?? env[variable] ?? fallback;
  const lock = pick('lock', 'LOCK', 'file');
  if (!LOCKS.includes(lock)) throw new Error(`LOCK must be one of ${LOCKS.join(', ')}, not '${lock}'`);
  const redisUrl = pick('redis', 'REDIS_URL', '') || null;
  const postgresUrl = pick('postgres', 'POSTGRES_URL', '') || null;
  if (lock === 'redis' && redisUrl === null) throw new Error('LOCK=redis needs REDIS_URL (or --redis URL)');
  if (lock === 'postgres' && postgresUrl === null)
    throw new Error('LOCK=postgres needs POSTGRES_URL (or --postgres URL)');
  return {
    processes: integer('PROCESSES', pick('processes', 'PROCESSES', '4'), 1, 64),
    threads: integer('THREADS', pick('threads', 'THREADS', '4'), 1, 64),
    increments: integer('INCREMENTS', pick('increments', 'INCREMENTS', '100'), 1, 1_000_000),
    sleepMs: integer('SLEEP_MS', pick('sleep', 'SLEEP_MS', '30'), 0, 60_000),
    port: integer('PORT', pick('port', 'PORT', '0'), 0, 65535),
    host: '127.0.0.1',
    lock,
    redisUrl,
    redisKey: redisUrl === null ? null : env.REDIS_KEY || `interlock-demo:${process.pid}:counter`,
    postgresUrl: lock === 'postgres' ? postgresUrl : null,
    hosts: integer('HOSTS', pick('hosts', 'HOSTS', '1'), 1, 8),
    // Set by the --hosts balancer for each tree it starts (hosts.js).
    sharedDir: env.INTERLOCK_SHARED_DIR || null,
    lockName: env.INTERLOCK_LOCK_NAME || `interlock-server-${process.pid}`,
    stopWithStdin: values['stop-with-stdin'] || env.STOP_WITH_STDIN === '1',
  };
}

module.exports = { LOCKS, USAGE, parse };
