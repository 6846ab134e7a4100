'use strict';
// SVG charts of a bench run, beside BENCHMARKS.md in benchmarks/. Vega-Lite
// specs compiled by Vega's own headless SVG renderer: no browser, no canvas.
//   node bench/charts.js [benchmarks/results.json]   (redraws from a saved run)
const fs = require('node:fs');
const path = require('node:path');
const { impls } = require('./impls');
const { summary } = require('./stats');

const DIR = path.join(__dirname, '..', 'benchmarks');
const labelOf = (id) => impls[id]?.label ?? id;
const median = (xs) => summary(xs).median;
const WIDTH = 560;

/** Series name shared by every chart, so one lock keeps one colour. */
const series = (label, mode) => (mode ? `${label} (${mode})` : label);

function pairsSpec(res) {
  const values = res.pairs
    .filter((r) => r.reps.length > 0)
    .map((r) => {
      const s = summary(r.reps);
      const c = r.impl.startsWith('c-');
      const group = c ? 'C floor' : r.label.startsWith('interlock') ? 'interlock' : 'peer';
      return { lock: c ? `C: ${r.calls}` : series(r.label, r.mode), group, ...s };
    });
  const y = { field: 'lock', type: 'nominal', sort: { field: 'median' }, title: null, axis: { labelLimit: 360 } };
  const x = { type: 'quantitative', scale: { type: 'log' }, title: 'ns per pair (log scale)' };
  return {
    title: 'Uncontended acquire + release: dot = median, line = min–max of reps',
    width: WIDTH,
    data: { values },
    layer: [
      { mark: { type: 'rule', color: 'gray' }, encoding: { y, x: { ...x, field: 'min' }, x2: { field: 'max' } } },
      {
        mark: { type: 'point', filled: true, size: 60 },
        encoding: { y, x: { ...x, field: 'median' }, color: { field: 'group', type: 'nominal', title: null } },
      },
      {
        mark: { type: 'text', align: 'left', dx: 6, dy: -7, fontSize: 9 },
        encoding: { y, x: { ...x, field: 'median' }, text: { field: 'median', format: ',.0f' } },
      },
    ],
  };
}

function contendedSpec(res) {
  const values = [];
  for (const r of res.contended) {
    if (r.reps.length === 0) continue;
    values.push({
      layout: r.layout,
      lock: series(r.label, r.mode),
      acqPerSec: median(r.reps.map((m) => m.acqPerSec)),
      jain: median(r.reps.map((m) => m.jain)),
    });
  }
  const x = {
    field: 'layout',
    type: 'ordinal',
    sort: res.layouts,
    title: null,
    axis: { labelAngle: -20, labelLimit: 240 },
  };
  const color = { field: 'lock', type: 'nominal', title: 'lock (API)', legend: { labelLimit: 320 } };
  const panel = (field, title, scale) => ({
    width: WIDTH,
    height: 220,
    mark: { type: 'line', point: true },
    encoding: { x, y: { field, type: 'quantitative', title, scale }, color },
  });
  return {
    title: 'Contended: every looper increments a shared counter under the lock (medians of reps)',
    data: { values },
    vconcat: [
      panel('acqPerSec', 'acquisitions/s (log scale)', { type: 'log' }),
      panel('jain', "Jain's fairness index (1 = equal shares)", { domain: [0, 1] }),
    ],
  };
}

function waitingSpec(res) {
  const values = [];
  for (const r of res.waiting) {
    if (r.reps.length === 0) continue;
    const grants = r.reps.map((x) => x.lastGrantMs).filter((x) => x !== null);
    values.push({
      lock: labelOf(r.impl),
      waiters: r.k,
      threads: median(r.reps.map((x) => x.threads)),
      lastGrantMs: grants.length === r.reps.length ? median(grants) : null,
    });
  }
  const x = { field: 'waiters', type: 'quantitative', scale: { type: 'log' }, title: 'pending acquire()s' };
  const color = { field: 'lock', type: 'nominal', legend: { labelLimit: 320 } };
  const panel = (field, title, scale) => ({
    width: WIDTH / 2 - 20,
    height: 220,
    mark: { type: 'line', point: true },
    encoding: { x, y: { field, type: 'quantitative', title, scale }, color },
  });
  return {
    title: 'Scale of waiting: k pending acquire()s in one thread behind another process',
    data: { values },
    transform: [{ filter: 'datum.lastGrantMs === null || datum.lastGrantMs > 0' }],
    hconcat: [
      panel('threads', 'native threads added', { type: 'symlog' }),
      panel('lastGrantMs', 'release → last grant, ms (log)', { type: 'log' }),
    ],
  };
}

function handoffSpec(res) {
  const values = [];
  for (const r of res.handoff) {
    for (const us of r.samples ?? []) values.push({ lock: r.label ?? labelOf(r.impl), us });
  }
  return {
    title: 'Handoff latency across processes: release in A → acquire() settles in B (µs, log scale)',
    width: WIDTH,
    data: { values },
    mark: { type: 'boxplot', extent: 'min-max' },
    encoding: {
      y: { field: 'lock', type: 'nominal', title: null, axis: { labelLimit: 360 } },
      x: { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: 'µs (box: quartiles, whiskers: min–max)' },
    },
  };
}

const CHARTS = [
  ['pairs', 'Uncontended pairs', pairsSpec, (res) => res.pairs.length > 0],
  ['contended', 'Contended throughput and fairness', contendedSpec, (res) => res.contended.length > 0],
  ['waiting', 'Scale of waiting', waitingSpec, (res) => res.waiting.length > 0],
  ['handoff', 'Handoff latency', handoffSpec, (res) => res.handoff.some((r) => r.samples?.length)],
];

async function toSvg(spec) {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vegaLite.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', ...spec }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes one SVG per chart that has data; returns [{ name, title, file }] with absolute paths. */
async function drawCharts(res, dir = DIR) {
  fs.mkdirSync(dir, { recursive: true });
  const drawn = [];
  for (const [name, title, spec, has] of CHARTS) {
    if (!has(res)) continue;
    const file = path.join(dir, `${name}.svg`);
    fs.writeFileSync(file, await toSvg(spec(res)));
    drawn.push({ name, title, file });
  }
  return drawn;
}

module.exports = { drawCharts, DIR };

if (require.main === module) {
  const file = process.argv[2] ?? path.join(DIR, 'results.json');
  drawCharts(JSON.parse(fs.readFileSync(file, 'utf8'))).then(
    (drawn) => {
      for (const d of drawn) console.log(`wrote ${d.file}`);
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
