'use strict';
// Property-based fuzzing (issue 7) for `npm run test:stress`: fast-check
// programs of acquire / tryAcquire / acquireSync / release (with and without
// unlinking the lock file) / timeout / abort / close / SharedMutex.unlink /
// SIGKILL / worker.terminate over 2 FileLocks and 2 SharedMutexes, run by 3
// child processes and 3 worker threads (quick: 2 and 2), checked by the model
// in fixtures/fuzz-model.js and a shared-memory witness of who is inside.
// A failure is shrunk to a minimal program; replay it with
//   FUZZ_SEED=<seed> FUZZ_PATH=<path> node test/stress/run.js --only fuzz
// and add it to test/fuzz-regressions.test.js.
const { Harness, DEFAULT_ACTORS } = require('./fixtures/fuzz-harness');
const { fuzz } = require('./fixtures/fuzz-programs');

const FULL_ACTORS = ['proc', 'proc', 'proc', 'worker', 'worker', 'worker'];

module.exports = {
  name: 'fuzz',
  budget: { quick: 45, full: 150 },
  async run({ quick, log }) {
    const seed = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED);
    const timeLimitMs = quick ? 20000 : 90000;
    const shrinkMs = quick ? 15000 : 40000;
    const maxOps = quick ? 25 : 40;
    const harness = new Harness({ actors: quick ? DEFAULT_ACTORS : FULL_ACTORS });
    const started = Date.now();
    await harness.start();
    log(`seed ${seed}: ${harness.kinds.join(',')} actors, up to ${maxOps} steps a program, ${timeLimitMs / 1000} s`);
    const progress = setInterval(() => {
      const s = harness.stats;
      log(`${s.runs} programs, ${s.steps} steps, ${s.grants} grants, ${s.kills} kills`);
    }, 10000);
    let result;
    try {
      result = await fuzz(harness, { seed, numRuns: 1e6, maxOps, timeLimitMs, shrinkMs, path: process.env.FUZZ_PATH });
    } finally {
      clearInterval(progress);
      await harness.stop();
    }
    const s = harness.stats;
    const seconds = (Date.now() - started) / 1000;
    const r = s.rejections;
    const figures = {
      seed,
      'programs run': s.runs,
      'steps (ops sent)': s.steps,
      'raced pairs (two actors at once)': s.racedPairs,
      'grants checked': s.grants,
      'grants with ownerDied': s.ownerDied,
      'ETIMEDOUT / ABORT_ERR / ERR_LOCK_CLOSED / EDEADLK': `${r.ETIMEDOUT ?? 0} / ${r.ABORT_ERR ?? 0} / ${r.ERR_LOCK_CLOSED ?? 0} / ${r.EDEADLK ?? 0}`,
      'tryAcquire misses': r.busy ?? 0,
      'kills + terminations': s.kills,
      'SharedMutex.unlink': s.ops.unlink ?? 0,
      'lock files unlinked by their holder': s.fileUnlinks,
      'longest wait for an owed grant (ms)': s.maxSettleMs,
      'steps per second': s.steps / seconds,
      'violations (shrunk counterexamples)': result.report === null ? 0 : 1,
    };
    const notes = [
      `${harness.kinds.filter((k) => k === 'proc').length} processes and ${harness.kinds.filter((k) => k === 'worker').length} workers over 2 FileLocks and 2 SharedMutexes; ops: ${JSON.stringify(s.ops)}`,
    ];
    if (result.report !== null) notes.push(result.report);
    return { ok: result.report === null && !result.details.failed, figures, notes };
  },
};
