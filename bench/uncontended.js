'use strict';
// Section 1: uncontended acquire+release pairs, each impl in a fresh child.
const path = require('node:path');
const floor = require('./floor');
const { impls } = require('./impls');
const { Child } = require('./pool');

const C_PAIRS = [
  ['flock', 'flock(LOCK_EX) + flock(LOCK_UN)'],
  ['flock-fstat', 'flock(LOCK_EX) + fstat + flock(LOCK_UN)'],
  ['mutex', 'pthread_mutex_lock + unlock (pshared, robust, errorcheck)'],
];

// Rep r of every lock runs before rep r + 1 of any, so a burst of load from
// elsewhere lands on all of them rather than on one.
async function uncontended({ ctx, cfg, floorBin, log }) {
  const rows = [];
  for (const [id, impl] of Object.entries(impls)) {
    if (impl.contendedOnly) continue;
    for (const mode of impl.forms) {
      rows.push({ label: impl.label, calls: impl.calls[mode], impl: id, mode, reps: [], child: new Child() });
    }
  }
  for (const [kind, calls] of C_PAIRS)
    rows.push({ label: 'C floor', calls, impl: `c-${kind}`, mode: 'sync', reps: [], kind });
  const lockPath = path.join(ctx.dir, 'floor.lock');
  try {
    for (let r = 0; r < cfg.reps; r++) {
      log(`rep ${r + 1}/${cfg.reps}`);
      for (const row of rows) {
        if (row.error) continue;
        try {
          const got = row.kind
            ? floor.pairs(floorBin, row.kind, lockPath, cfg.pairMs, 1)
            : await row.child.call('pairs', { impl: row.impl, mode: row.mode, ms: cfg.pairMs, reps: 1, ctx }, 120000);
          row.reps.push(...got);
        } catch (err) {
          row.error = err.message.split('\n')[0];
          row.child?.kill();
        }
      }
    }
  } finally {
    await Promise.all(rows.map((row) => row.child?.stop()));
  }
  for (const row of rows) {
    delete row.child;
    log(`pair ${row.impl} ${row.mode}`, row.error ?? row.reps.map((x) => Math.round(x)));
  }
  return rows;
}

module.exports = { uncontended };
