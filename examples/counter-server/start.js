#!/usr/bin/env node

// The motivating server, runnable: a node:cluster primary with N HTTP
// processes on one port, each with M worker threads that increment one
// shared counter by read → sleep → write. This file is the primary: it
// makes the run's state, starts the processes, counts jobs in flight, and
// on SIGINT/SIGTERM stops everything and removes what it made.
const cluster = require('node:cluster');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { SharedMutex } = require('interlock');
const { USAGE, parse } = require('./config');
const { openCounter } = require('./counter');

const STOP_GRACE_MS = 5000;

let config;
try {
  config = parse();
} catch (err) {
  console.error(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (config.help) {
  console.log(USAGE);
  process.exit(0);
}

let counter = null;
let stopping = null;
let port = null;
let ready = 0;
let announced = false;
const jobs = { running: 0, started: 0, finished: 0 };

function removeState() {
  if (config.lock === 'mutex') {
    try {
      SharedMutex.unlink(config.mutexName);
    } catch (err) {
      if (err.code !== 'ENOENT') console.error(err.message);
    }
  }
  fs.rmSync(config.dir, { recursive: true, force: true });
}

function banner() {
  const url = `http://${config.host}:${port}`;
  const expected = 5 * config.increments;
  const seconds = ((expected * config.sleepMs) / 1000).toFixed(1);
  const wait = config.lock === 'none' ? ' (the lost updates make it less)' : `, after at least ${seconds} s`;
  return `interlock counter server on ${url} (primary pid ${process.pid})
  ${config.processes} processes × ${config.threads} worker threads
  lock:    ${counter.lockLabel}${config.lock === 'mutex' ? ` /dev/shm/${config.mutexName}` : ''}
  counter: ${counter.storeLabel}
  state:   ${config.dir}
  GET /run: one worker thread does ${config.increments} × (read → sleep ${config.sleepMs} ms → write)

Drive it from another terminal:
  curl -s ${url}/clear
  for i in 1 2 3 4 5; do curl -s ${url}/run; done
  curl -s ${url}/total    # again until "running":0; expect ${expected}${wait}
Ctrl-C stops it and removes its state.`;
}

function withTimeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function stop(code) {
  if (stopping !== null) return stopping;
  stopping = (async () => {
    const workers = Object.values(cluster.workers);
    const exited = workers.map((w) => new Promise((resolve) => (w.isDead() ? resolve() : w.once('exit', resolve))));
    for (const w of workers) if (w.isConnected()) w.send({ type: 'stop' });
    const grace = setTimeout(() => {
      for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
    await Promise.all(exited);
    clearTimeout(grace);
    try {
      if (counter?.store.remove) await withTimeout(counter.store.remove(), 2000, 'removing the counter');
      await counter?.close();
    } catch (err) {
      console.error(err.message);
      code ||= 1;
    } finally {
      removeState();
    }
    process.exit(code);
  })();
  return stopping;
}

function onMessage(worker, msg) {
  if (msg.type === 'job') {
    jobs.running += msg.delta;
    if (msg.delta > 0) jobs.started++;
    else jobs.finished++;
  } else if (msg.type === 'stats') {
    worker.send({ type: 'stats', id: msg.id, ...jobs });
  } else if (msg.type === 'ready') {
    ready++;
    announce();
  }
}

// Once every process listens and the port is known (the two messages race).
function announce() {
  if (announced || ready < config.processes || port === null || stopping !== null) return;
  announced = true;
  console.log(banner());
}

function fatal(err) {
  console.error(err?.stack ?? err);
  if (stopping === null) return stop(1);
  // Failing while stopping: remove what we made and go (the processes
  // follow us out when their IPC channel closes).
  removeState();
  process.exit(1);
}

function startPrimary() {
  config.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interlock-server-'));
  config.mutexName = `interlock-server-${process.pid}`;
  fs.writeFileSync(path.join(config.dir, 'counter'), '0\n');
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (stopping === null) console.log(`\n${signal}: stopping`);
      stop(0);
    });
  }
  // Whoever started us went away (even by SIGKILL): its end of our stdin closed.
  if (config.stopWithStdin) {
    process.stdin.on('end', () => stop(0));
    process.stdin.on('error', () => stop(0));
    process.stdin.resume();
  }
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  main().catch(fatal);
}

/**
 * A free port, found by binding port 0 and letting it go. Bun's node:cluster
 * does not share a port-0 listener (each process would get its own port):
 * its processes share a fixed port through SO_REUSEPORT instead, so under
 * Bun the primary picks the port. Another program could take it in between.
 */
function freePort(host) {
  return new Promise((resolve, reject) => {
    const probe = require('node:net').createServer();
    probe.on('error', reject);
    probe.listen(0, host, () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
}

async function main() {
  if (config.port === 0 && process.versions.bun) config.port = await freePort(config.host);
  // The primary clears the counter (creating a SharedMutex region or the
  // Redis key) before any process starts.
  counter = await openCounter(config);
  await counter.clear();
  cluster.setupPrimary({ exec: path.join(__dirname, 'server.js') });
  cluster.on('message', onMessage);
  cluster.on('listening', (_worker, address) => {
    // With port 0 the primary binds one free port and every process shares it.
    if (port !== null && port !== address.port) fatal(new Error(`processes listen on ${port} and ${address.port}`));
    port = address.port;
    announce();
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping === null) fatal(new Error(`process ${worker.process.pid} exited (${signal ?? code}); stopping`));
  });
  const env = { INTERLOCK_SERVER_CONFIG: JSON.stringify(config) };
  for (let i = 0; i < config.processes; i++) cluster.fork(env);
}

// --hosts N: this process is the balancer in front of N server trees.
if (config.hosts > 1) require('./hosts').runHosts(config);
else startPrimary();
