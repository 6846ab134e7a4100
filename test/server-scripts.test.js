'use strict';
// scripts/redis.sh and scripts/postgres.sh, which .ci/run and developers use
// to run the remote-lock tests against private servers. A state file left by
// a server that is gone (a run killed before its stop, a /tmp copied to
// another machine) must not stop the next start; a live one still must.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { serverInstalled } = require('./support/servers');

const scripts = path.join(__dirname, '..', 'scripts');

const kinds = [
  {
    kind: 'redis',
    // Where its start looks for the server's pid, relative to the state dir.
    pidFile: 'redis.pid',
    urlLine: /^REDIS_URL=redis:\/\/127\.0\.0\.1:\d+$/m,
  },
  {
    kind: 'postgres',
    pidFile: 'data/postmaster.pid',
    urlLine: /^POSTGRES_URL=postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/m,
  },
];

/** A pid that no process has now: one that has just exited. */
function deadPid() {
  const r = spawnSync('true');
  return r.pid;
}

for (const { kind, pidFile, urlLine } of kinds) {
  describe(`scripts/${kind}.sh`, function () {
    this.timeout(60000);
    let state;
    const run = (cmd) =>
      spawnSync('bash', [path.join(scripts, `${kind}.sh`), cmd], {
        encoding: 'utf8',
        env: { ...process.env, [`INTERLOCK_${kind.toUpperCase()}_STATE`]: state },
      });

    before(function () {
      if (serverInstalled(kind)) return;
      const why = `${kind} is not installed; .ci/run installs it`;
      if (process.env.CI === 'true') throw new Error(`CI=true but ${why}`);
      console.log(`      skipped: ${why}`);
      this.skip(); // no server binary here; the reason is printed above
    });

    beforeEach(() => {
      state = path.join(os.tmpdir(), `interlock-${kind}-scripts-test-${process.pid}.state`);
    });

    afterEach(() => {
      run('stop');
      assert.equal(fs.existsSync(state), false, 'stop left its state file');
    });

    /** A state file naming a temp dir whose pid file holds `pid`. */
    function staleState(pid) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `interlock-${kind}.`));
      fs.mkdirSync(path.dirname(path.join(dir, pidFile)), { recursive: true });
      fs.writeFileSync(path.join(dir, pidFile), `${pid}\n`);
      fs.writeFileSync(state, `${dir}\n`);
      return dir;
    }

    it('starts over a stale state file whose server has exited, removes the stale dir, and refuses a second start while it runs', () => {
      const stale = staleState(deadPid());
      const first = run('start');
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stdout, urlLine);
      assert.match(first.stderr, /removing stale state/);
      assert.equal(fs.existsSync(stale), false, 'the stale dir is still there');
      const second = run('start');
      assert.equal(second.status, 1);
      assert.match(second.stderr, /already running/);
      assert.equal(second.stdout, '');
    });

    // The pid check is shared (lib-server.sh), so one kind is enough: the
    // cheaper one to stop.
    if (kind === 'postgres') {
      it('starts over a stale state file whose pid now belongs to another program', () => {
        staleState(process.pid);
        const r = run('start');
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, urlLine);
      });
    }
  });
}
