'use strict';
// Parts a bench child plays for the waiting-scale and handoff figures:
// holder, many waiters, one waiter. State lives here between requests.
const fs = require('node:fs');
const { impls } = require('./impls');

const now = () => process.hrtime.bigint();
const threadCount = () => fs.readdirSync('/proc/self/task').length;

let holder = null; // { form, token }
let waiter = null; // { granted: Promise<bigint> }
let crowd = null; // { lastGrant: Promise<bigint> }
const opened = new Map();

// The holder and the single waiter reuse one instance per lock.
function openOnce(impl, ctx) {
  const key = `${impl}:${ctx.tag}`;
  let lock = opened.get(key);
  if (lock === undefined) {
    lock = impls[impl].open({ ...ctx, contended: true });
    opened.set(key, lock);
  }
  return lock;
}

function withBound(promise, ms) {
  let timer;
  const bound = new Promise((resolve) => {
    timer = setTimeout(resolve, ms, null);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** Median fs.readFile latency in ms over `n` reads; null if one exceeds `boundMs`. */
async function readFileLatency(file, n, boundMs) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    const done = await withBound(
      fs.promises.readFile(file).then(() => true),
      boundMs,
    );
    if (done === null) return null;
    times.push(Number(now() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

module.exports = {
  async hold({ impl, ctx }) {
    const lock = openOnce(impl, ctx);
    const form = lock.sync ?? lock.async;
    holder = { form, token: await form.lock() };
    return process.pid;
  },

  async release() {
    const { form, token } = holder;
    holder = null;
    const t0 = now();
    const u = form.unlock(token);
    if (u !== undefined) await u;
    return t0.toString();
  },

  /** Starts one acquire() that the holder blocks; `granted` reports when it settles. */
  waitOne({ impl, ctx }) {
    const form = openOnce(impl, ctx).async;
    waiter = {
      granted: form.lock().then(async (token) => {
        const t1 = now();
        const u = form.unlock(token);
        if (u !== undefined) await u;
        return t1;
      }),
    };
    return true;
  },

  async granted({ boundMs }) {
    const t1 = await withBound(waiter.granted, boundMs);
    return t1 === null ? null : t1.toString();
  },

  /**
   * `k` acquire()s in this thread, each on its own instance, behind a lock
   * held elsewhere: what it costs while they wait. Each releases as soon as
   * it is granted, so the grants run down the line after the holder lets go.
   */
  async waitMany({ impl, ctx, k, file, boundMs }) {
    const forms = [];
    for (let i = 0; i < k; i++) forms.push(impls[impl].open({ ...ctx, contended: true }).async);
    // The baseline comes after loading the impl and warming libuv's pool.
    const readFile = await readFileLatency(file, 10, boundMs);
    const before = { threads: threadCount(), rss: process.memoryUsage().rss, readFile };
    let left = k;
    let last;
    const allGranted = new Promise((resolve, reject) => {
      last = resolve;
      for (const form of forms) {
        form.lock().then(async (token) => {
          const t = now();
          const u = form.unlock(token);
          if (u !== undefined) await u;
          if (--left === 0) last(t);
        }, reject);
      }
    });
    crowd = { lastGrant: allGranted };
    await new Promise((r) => setTimeout(r, 50)); // let waiter threads start
    const during = { threads: threadCount(), rss: process.memoryUsage().rss };
    during.readFile = await readFileLatency(file, 10, boundMs);
    return { before, during, left };
  },

  async lastGrant({ boundMs }) {
    const t = await withBound(crowd.lastGrant, boundMs);
    return t === null ? null : t.toString();
  },
};
