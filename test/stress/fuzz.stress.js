'use strict';
// Property-based fuzzing (issue 7) for `npm run test:stress`: fast-check
// programs of acquire / tryAcquire / acquireSync / release (with and without
// unlinking the lock file) / timeout / abort / close / SharedMutex.unlink /
// SIGKILL / worker.terminate over 2 FileLocks and 2 SharedMutexes, run by 3
// child processes and 3 worker threads (quick: 2 and 2), checked by the model
// in fixtures/fuzz-model.js and a shared-memory witness of who is inside.
// A seed gives the same programs in the same mode (quick and full differ in
// actors and length). A failure is logged at once with the command that
// replays it, then shrunk to a minimal program, printed with its own command:
//   FUZZ_SEED=<seed> FUZZ_PATH=<path> node test/stress/run.js --quick --only fuzz --no-report
// FUZZ_REPEAT=<n> runs that one program n times (races make some failures
// come and go). Add what it finds to test/fuzz-regressions.test.js.
const { Harness, DEFAULT_ACTORS } = require('./fixtures/fuzz-harness');
const { fuzz } = require('./fixtures/fuzz-programs');

const FULL_ACTORS = ['proc', 'proc', 'proc', 'worker', 'worker', 'worker'];

/** The shell command that runs this seed (and path) again, in this mode. */
function replayCommand(quick, seed, path) {
  const at = path === undefined ? '' : ` FUZZ_PATH=${path}`;
  return `FUZZ_SEED=${seed}${at} node test/stress/run.js --${quick ? 'quick' : 'full'} --only fuzz --no-report`;
}

/** FUZZ_PATH given: that program only, FUZZ_REPEAT times; no shrinking. */
async function replay(harness, { quick, seed, path, maxOps, log }) {
  const repeat = Number(process.env.FUZZ_REPEAT ?? 1);
  const reports = [];
  for (let i = 0; i < repeat; i++) {
    const { report } = await fuzz(harness, { seed, path, maxOps, once: true, endOnFailure: true });
    log(`replay ${i + 1}/${repeat}: ${report === null ? 'passed' : report.split('\n').at(-1)}`);
    if (report !== null) reports.push(report);
  }
  const notes = [`replayed ${replayCommand(quick, seed, path)} ${repeat} times: ${reports.length} failed`];
  return {
    ok: reports.length === 0,
    figures: { seed, path, replays: repeat, failed: reports.length },
    notes: [...notes, ...reports.slice(0, 1)],
  };
}

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
    if (process.env.FUZZ_PATH !== undefined) {
      try {
        return await replay(harness, { quick, seed, path: process.env.FUZZ_PATH, maxOps, log });
      } finally {
        await harness.stop();
      }
    }
    log(`seed ${seed}: ${harness.kinds.join(',')} actors, up to ${maxOps} steps a program, ${timeLimitMs / 1000} s`);
    log(`run again with: ${replayCommand(quick, seed)}`);
    const progress = setInterval(() => {
      const s = harness.stats;
      log(`${s.runs} programs, ${s.steps} steps, ${s.grants} grants, ${s.kills} kills`);
    }, 10000);
    const onFailure = (path, program, err) => {
      log(`failure (shrinking next): ${err?.message ?? err}`);
      log(`program: ${JSON.stringify(program)}`);
      log(`replay: ${replayCommand(quick, seed, path)}`);
    };
    let result;
    try {
      result = await fuzz(harness, {
        seed,
        numRuns: 1e6,
        maxOps,
        timeLimitMs,
        shrinkMs,
        onFailure,
      });
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
    if (result.report !== null) {
      notes.push(result.report);
      notes.push(`replay: ${replayCommand(quick, seed, result.details.counterexamplePath)}`);
    }
    return { ok: result.report === null && !result.details.failed, figures, notes };
  },
};
