'use strict';
// Uncontended acquire+release pairs, timed in batches on one thread.
const { impls } = require('./impls');

const now = () => process.hrtime.bigint();

function syncBatch(form, n) {
  for (let i = 0; i < n; i++) form.unlock(form.lock());
}

async function asyncBatch(form, n) {
  for (let i = 0; i < n; i++) {
    const token = await form.lock();
    const u = form.unlock(token);
    if (u !== undefined) await u;
  }
}

const prepared = new Map();

// Opens, sizes a batch of about 1 ms (keeping clock reads out of the
// figure), and warms up (JIT, caches, lazily made threads), once per lock.
async function prepare({ impl, mode, ms, ctx }) {
  const key = `${impl}:${mode}:${ctx.tag}`;
  let p = prepared.get(key);
  if (p !== undefined) return p;
  const form = impls[impl].open({ ...ctx, contended: false })[mode];
  const batch = mode === 'sync' ? (n) => syncBatch(form, n) : (n) => asyncBatch(form, n);
  let n = 1;
  for (;;) {
    const t0 = now();
    await batch(n);
    if (now() - t0 >= 1000000n || n >= 1 << 24) break;
    n *= 2;
  }
  p = { batch, n };
  await timed(p, ms);
  prepared.set(key, p);
  return p;
}

async function timed({ batch, n }, ms) {
  const t0 = now();
  const end = t0 + BigInt(ms) * 1000000n;
  let done = 0;
  let t1;
  do {
    await batch(n);
    done += n;
    t1 = now();
  } while (t1 < end);
  return Number(t1 - t0) / done;
}

/** ns per pair for each of `reps` runs of about `ms` each. */
async function pairs(cmd) {
  const p = await prepare(cmd);
  const out = [];
  for (let r = 0; r < cmd.reps; r++) out.push(await timed(p, cmd.ms));
  return out;
}

module.exports = { pairs };
