// One process of the cluster: an HTTP server on the port every process
// shares, and a pool of worker threads that do all the counter work. /run
// hands a job to the least busy thread and answers at once; /clear and
// /total wait for a thread's answer.
const http = require('node:http');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const config = JSON.parse(process.env.INTERLOCK_SERVER_CONFIG);
const threads = [];
const pending = new Map(); // id → resolve/reject, for threads' and the primary's answers
let nextId = 1;
let server;
let stopping = false;

function fail(err) {
  console.error(`pid ${process.pid}: ${err?.stack ?? err}`);
  process.exit(1);
}

function answer(msg) {
  const waiter = pending.get(msg.id);
  pending.delete(msg.id);
  if (msg.error === undefined) waiter?.resolve(msg);
  else waiter?.reject(new Error(msg.error));
}

function startThread() {
  const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: config });
  const thread = { worker, tasks: 0 };
  worker.on('error', fail);
  worker.on('exit', (code) => stopping || fail(new Error(`worker thread exited (${code})`)));
  worker.on('message', (msg) => (msg.type === 'ready' ? thread.ready() : answer(msg)));
  threads.push(thread);
  return new Promise((resolve) => {
    thread.ready = resolve;
  });
}

/** Sends a task to the least busy thread; `done` resolves with its { value }. */
function ask(type, fields = {}) {
  const thread = threads.reduce((a, b) => (b.tasks < a.tasks ? b : a));
  const id = nextId++;
  thread.tasks++;
  const done = new Promise((resolve, reject) => pending.set(id, { resolve, reject })).finally(() => thread.tasks--);
  thread.worker.postMessage({ type, id, ...fields });
  return { id, threadId: thread.worker.threadId, done };
}

/** Jobs in flight, counted by the primary across all processes. */
function primaryStats() {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    process.send({ type: 'stats', id });
  });
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ ...body, pid: process.pid })}\n`);
}

function startJob() {
  const job = { increments: config.increments, sleepMs: config.sleepMs };
  const { id, threadId, done } = ask('run', job);
  done
    .catch((err) => console.error(`pid ${process.pid}: job ${id} failed:\n${err.message}`))
    .then(() => process.send({ type: 'job', delta: -1 }));
  return { job: `${process.pid}-${id}`, thread: threadId, ...job };
}

const routes = {
  '/health': async () => [200, { status: 'ok', threads: threads.length }],
  '/clear': async () => [200, { total: (await ask('clear').done).value }],
  '/total': async () => {
    const { running } = await primaryStats(); // before the read: running 0 means every write landed
    return [200, { total: (await ask('read').done).value, running }];
  },
  '/run': async () => {
    // Counted by the primary before we answer, so a /total after this reply sees it.
    await new Promise((resolve) => process.send({ type: 'job', delta: 1 }, resolve));
    return [202, startJob()];
  },
};

function handle(req, res) {
  const route = routes[new URL(req.url, 'http://localhost').pathname];
  if (route === undefined) return reply(res, 404, { error: `no route ${req.url}; try /run, /total, /clear, /health` });
  if (req.method !== 'GET') return reply(res, 405, { error: 'GET only' });
  route().then(
    ([status, body]) => reply(res, status, body),
    (err) => reply(res, 500, { error: err.message }),
  );
}

async function stop() {
  if (stopping) return;
  stopping = true;
  server?.close();
  server?.closeAllConnections();
  await Promise.all(threads.map((t) => t.worker.terminate()));
  process.exit(0);
}

process.on('message', (msg) => {
  if (msg.type === 'stats') answer(msg);
  if (msg.type === 'stop') stop().catch(fail);
});
// The primary stops every process in order (Ctrl-C reaches the whole
// process group); if the primary dies, the lost IPC channel ends us.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

async function main() {
  await Promise.all(Array.from({ length: config.threads }, startThread));
  server = http.createServer(handle);
  server.on('error', fail);
  server.listen(config.port, config.host, () => process.send({ type: 'ready' }));
}

main().catch(fail);
