// --hosts N: N independent server trees, as if on N machines behind a load
// balancer, sharing only the counter's store. Each tree is a start.js of
// its own with its own state dir (so its own FileLock files) and its own
// SharedMutex name; a machine-local lock then excludes nothing across trees,
// and only a distributed one (LOCK=redis, LOCK=postgres) keeps the total.
// This process is the balancer: /run round-robin, /total from every tree.
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const START = path.join(__dirname, 'start.js');

function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(text) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
  });
}

/** Starts one tree; resolves with { child, url } once it printed its banner. */
function startTree(i, config, shared) {
  const env = {
    ...process.env,
    HOSTS: '1',
    PORT: '0',
    STOP_WITH_STDIN: '1',
    INTERLOCK_SHARED_DIR: shared,
    INTERLOCK_LOCK_NAME: config.lockName,
    INTERLOCK_HOST_NAME: `host-${i + 1}`,
  };
  if (config.redisKey) env.REDIS_KEY = config.redisKey;
  const args = [
    START,
    ...process.argv.slice(2).filter((a, j, all) => !/^--hosts(=|$)/.test(a) && all[j - 1] !== '--hosts'),
  ];
  const child = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      if (url && out.includes('Ctrl-C stops it')) resolve({ child, url, banner: out });
    });
    child.on('exit', (code) => reject(new Error(`host ${i + 1} exited (${code}) before it was ready:\n${out}`)));
  });
}

async function runHosts(config) {
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-hosts-'));
  fs.writeFileSync(path.join(shared, 'counter'), '0\n');
  config.lockName = `interlock-server-${process.pid}`;
  if (config.redisUrl && !config.redisKey) config.redisKey = `interlock-demo:${process.pid}:counter`;
  const trees = [];
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    server?.close();
    await Promise.all(
      trees.map(
        ({ child }) =>
          new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', resolve);
            child.stdin.end(); // the tree stops and removes its state
          }),
      ),
    );
    fs.rmSync(shared, { recursive: true, force: true });
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => stop(0));
  if (config.stopWithStdin) {
    process.stdin.on('end', () => stop(0));
    process.stdin.on('error', () => stop(0));
    process.stdin.resume();
  }
  let server;
  try {
    for (let i = 0; i < config.hosts; i++) trees.push(await startTree(i, config, shared));
  } catch (err) {
    console.error(err.message);
    return stop(1);
  }
  for (const { child } of trees) child.on('exit', () => stopping || stop(1));
  let next = 0;
  const routes = {
    '/run': () => getJson(`${trees[next++ % trees.length].url}/run`),
    '/clear': () => getJson(`${trees[0].url}/clear`),
    '/health': () => getJson(`${trees[0].url}/health`),
    // Jobs still running anywhere, then the one shared counter.
    '/total': async () => {
      const answers = await Promise.all(trees.map((t) => getJson(`${t.url}/total`)));
      const running = answers.reduce((n, a) => n + a.body.running, 0);
      const { body } = await getJson(`${trees[0].url}/total`);
      return { status: 200, body: { total: body.total, running: running + body.running } };
    },
  };
  server = http.createServer((req, res) => {
    const route = routes[new URL(req.url, 'http://localhost').pathname];
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (route === undefined) return reply(404, { error: `no route ${req.url}` });
    route().then(
      ({ status, body }) => reply(status, body),
      (err) => reply(502, { error: err.message }),
    );
  });
  server.listen(config.port, config.host, () => {
    const url = `http://${config.host}:${server.address().port}`;
    const lines = trees.map(({ url: u, banner }, i) => {
      const lock = /lock: +(.*)/.exec(banner)?.[1];
      const counter = /counter: +(.*)/.exec(banner)?.[1];
      return `  host ${i + 1}: ${u}  lock: ${lock}\n          counter: ${counter}`;
    });
    console.log(`interlock counter server, ${config.hosts} hosts behind a balancer on ${url} (pid ${process.pid})
${lines.join('\n')}
  state:   ${shared}
  GET /run goes to the hosts in turn; /total sums their running jobs.

Drive it from another terminal:
  curl -s ${url}/clear
  for i in 1 2 3 4 5; do curl -s ${url}/run; done
  curl -s ${url}/total    # again until "running":0; expect ${5 * config.increments} with a distributed lock
Ctrl-C stops it and removes its state.`);
  });
}

module.exports = { runHosts };
