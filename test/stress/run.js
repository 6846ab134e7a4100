#!/usr/bin/env node
'use strict';
// Runs every test/stress/*.stress.js module, each in its own process group
// with a hard time budget, and writes their figures into RELIABILITY.md.
//   node test/stress/run.js [--quick|--full] [--only name[,name]] [--no-report]
// Exits non-zero if any module is not ok (or overran its budget).
// A module exports { name, run } and may add budget: { quick, full } (seconds)
// and execArgv (extra node flags for its process).
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { removeRegion } = require('./fixtures/common');

const ROOT = path.join(__dirname, '..', '..');
const REPORT = path.join(ROOT, 'RELIABILITY.md');
// Whole-run ceilings (seconds); each module also has its own budget.
const TOTAL = { quick: 180, full: 600 };
const DEFAULT_BUDGET = { quick: 60, full: 240 };

function parseArgs(argv) {
  const opts = { mode: 'full', only: null, report: true, child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.mode = 'quick';
    else if (a === '--full') opts.mode = 'full';
    else if (a === '--no-report') opts.report = false;
    else if (a === '--only') opts.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--only=')) opts.only = a.slice(7).split(',').filter(Boolean);
    else if (a === '--child') opts.child = argv[++i];
    else throw new Error(`unknown argument '${a}' (use --quick, --full, --only name, --no-report)`);
  }
  return opts;
}

/** Inside the module's own process: run it and send the result up. */
async function runChild(file, mode) {
  const mod = require(path.join(__dirname, file));
  const log = (msg) => process.send({ log: String(msg) });
  let result;
  try {
    result = await mod.run({ quick: mode === 'quick', log });
  } catch (err) {
    result = { ok: false, figures: {}, notes: [`threw: ${err?.stack ?? err}`] };
  }
  process.send({ result }, () => {
    process.disconnect();
    // Whatever the module left running must not hold this process up.
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    load: os.loadavg()[0].toFixed(1),
  };
}

let current = null; // the running module's child

function killCurrent() {
  if (current === null) return;
  try {
    process.kill(-current.pid, 'SIGKILL'); // its whole process group
  } catch {}
}

process.on('exit', killCurrent);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killCurrent();
    process.exit(130);
  });
}

/** Runs `file` in a detached child; resolves with its result or a failure. */
function runModule(file, name, mode, budgetS, execArgv) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = fork(__filename, ['--child', file, `--${mode}`], {
      detached: true, // own process group, so a kill takes its children too
      execArgv: ['--expose-gc', ...execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    current = child;
    let result = null;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killCurrent();
    }, budgetS * 1000);
    child.on('message', (msg) => {
      if (msg.log !== undefined) {
        const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
        console.log(`[${name} ${t}s] ${msg.log}`);
      } else if (msg.result !== undefined) result = msg.result;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Leftovers of the module (children it forgot) go with its group.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
      current = null;
      sweep(child.pid);
      const seconds = (Date.now() - started) / 1000;
      if (result === null) {
        const why = timedOut
          ? `exceeded its ${budgetS} s budget and was killed`
          : `exited (${code ?? signal}) without a result`;
        result = { ok: false, figures: {}, notes: [why] };
      }
      resolve({ ...normalise(result), seconds });
    });
  });
}

/**
 * Removes what a module's process left under its pid (fixtures/common.js
 * names regions and temp dirs after it): its exit handlers do not run when
 * it is killed or crashes, nor for names its own children made.
 */
function sweep(pid) {
  const places = [
    ['/dev/shm', `ilstress-${pid}-`],
    [os.tmpdir(), `interlock-stress-${pid}-`],
  ];
  for (const [dir, prefix] of places) {
    let names = [];
    try {
      names = fs.readdirSync(dir);
    } catch {}
    for (const n of names) {
      if (!n.startsWith(prefix)) continue;
      if (dir === '/dev/shm') removeRegion(n);
      else fs.rmSync(path.join(dir, n), { recursive: true, force: true });
    }
  }
}

function normalise(r) {
  return {
    ok: r?.ok === true,
    figures: r?.figures && typeof r.figures === 'object' ? r.figures : {},
    notes: Array.isArray(r?.notes) ? r.notes.map(String) : [],
  };
}

function fmt(v) {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(4)));
  }
  return String(v).replace(/\|/g, '\\|');
}

function section(name, mode, r, m, command, date) {
  const lines = [
    `<!-- stress:${name}:${mode} -->`,
    `### ${name} (${mode}) — ${r.ok ? 'ok' : 'FAILED'}`,
    '',
    `- Command: \`${command}\``,
    `- Date: ${date}; ${r.seconds.toFixed(1)} s`,
    `- Machine: ${m.nproc} CPUs (${m.cpu}), Linux ${m.kernel}, Node ${m.node}, ${m.memGiB} GiB RAM, load average ${m.load} at start`,
    '',
  ];
  const keys = Object.keys(r.figures);
  if (keys.length > 0) {
    lines.push('| figure | value |', '| --- | --- |');
    for (const k of keys) lines.push(`| ${k} | ${fmt(r.figures[k])} |`);
    lines.push('');
  }
  for (const n of r.notes) lines.push(`- ${n.replace(/\n/g, ' ')}`);
  if (r.notes.length > 0) lines.push('');
  lines.push(`<!-- /stress:${name}:${mode} -->`);
  return lines.join('\n');
}

/** Replaces (or appends) each module's section, keeping everything else. */
function writeReport(results, mode, m, command, date) {
  let text = fs.existsSync(REPORT) ? fs.readFileSync(REPORT, 'utf8') : '# Reliability\n';
  for (const [name, r] of results) {
    const body = section(name, mode, r, m, command, date);
    const begin = `<!-- stress:${name}:${mode} -->`;
    const end = `<!-- /stress:${name}:${mode} -->`;
    const i = text.indexOf(begin);
    const j = text.indexOf(end);
    if (i >= 0 && j > i) text = text.slice(0, i) + body + text.slice(j + end.length);
    else text = `${text.replace(/\s*$/, '')}\n\n${body}\n`;
  }
  fs.writeFileSync(REPORT, text);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.child !== null) return runChild(opts.child, opts.mode);

  const files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.stress.js'))
    .sort();
  const modules = files.map((file) => {
    const mod = require(path.join(__dirname, file));
    if (typeof mod.name !== 'string' || typeof mod.run !== 'function') {
      throw new Error(`${file} does not export { name, run }`);
    }
    return {
      file,
      name: mod.name,
      budget: mod.budget?.[opts.mode] ?? DEFAULT_BUDGET[opts.mode],
      execArgv: Array.isArray(mod.execArgv) ? mod.execArgv.map(String) : [],
    };
  });
  const chosen = opts.only === null ? modules : modules.filter((x) => opts.only.includes(x.name));
  if (opts.only !== null) {
    const unknown = opts.only.filter((n) => !modules.some((x) => x.name === n));
    if (unknown.length > 0) throw new Error(`no stress module named ${unknown.join(', ')}`);
  }

  const m = machine();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const only = opts.only === null ? '' : ` --only ${opts.only.join(',')}`;
  console.log(`stress (${opts.mode}): ${chosen.map((x) => x.name).join(', ')} on ${m.nproc} CPUs, load ${m.load}`);

  const deadline = Date.now() + TOTAL[opts.mode] * 1000;
  const results = [];
  for (const mod of chosen) {
    const left = Math.max(1, Math.floor((deadline - Date.now()) / 1000));
    const budget = Math.min(mod.budget, left);
    const r = await runModule(mod.file, mod.name, opts.mode, budget, mod.execArgv);
    results.push([mod.name, r]);
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${mod.name} (${r.seconds.toFixed(1)} s)`);
    for (const [k, v] of Object.entries(r.figures)) console.log(`       ${k}: ${fmt(v)}`);
    for (const n of r.notes) console.log(`     - ${n}`);
  }
  if (opts.report && results.length > 0) {
    const command = `npm run test:stress -- --${opts.mode}${only}`;
    writeReport(results, opts.mode, m, command, date);
    console.log(`figures written to ${path.relative(process.cwd(), REPORT) || REPORT}`);
  }
  const failed = results.filter(([, r]) => !r.ok).map(([n]) => n);
  if (failed.length > 0) {
    console.log(`stress: FAILED ${failed.join(', ')}`);
    process.exitCode = 1;
  } else console.log('stress: all ok');
}

main().catch((err) => {
  console.error(err?.stack ?? err);
  process.exitCode = 2;
});
