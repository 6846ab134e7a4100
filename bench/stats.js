'use strict';
// Small statistics for bench figures: every figure is reps of one number.

function sorted(xs) {
  return [...xs].sort((a, b) => a - b);
}

/** Linear-interpolated quantile, q in [0, 1]. */
function quantile(xs, q) {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function median(xs) {
  return quantile(xs, 0.5);
}

/** { median, min, max, q1, q3, n } of a list of reps. */
function summary(xs) {
  const s = sorted(xs);
  return {
    median: quantile(s, 0.5),
    min: s[0],
    max: s[s.length - 1],
    q1: quantile(s, 0.25),
    q3: quantile(s, 0.75),
    n: s.length,
  };
}

/** Jain's fairness index: 1 when all equal, 1/n when one takes everything. */
function jain(counts) {
  const sum = counts.reduce((a, b) => a + b, 0);
  const squares = counts.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (counts.length * squares);
}

/** Largest share over smallest (Infinity when someone got nothing). */
function shareSpread(counts) {
  const min = Math.min(...counts);
  const max = Math.max(...counts);
  return min === 0 ? (max === 0 ? 1 : Number.POSITIVE_INFINITY) : max / min;
}

// Log-scale histogram of durations (ns): 8 bins per power of two, so a
// quantile read from it is within 9% of the exact one. Sparse: { bin: count }.
const BINS_PER_OCTAVE = 8;

function histogram(values) {
  const bins = {};
  let max = 0;
  for (const v of values) {
    const b = v < 1 ? 0 : Math.floor(Math.log2(v) * BINS_PER_OCTAVE);
    bins[b] = (bins[b] ?? 0) + 1;
    if (v > max) max = v;
  }
  return { bins, max, n: values.length };
}

function mergeHistograms(hs) {
  const bins = {};
  for (const h of hs) for (const [b, c] of Object.entries(h.bins)) bins[b] = (bins[b] ?? 0) + c;
  return { bins, max: Math.max(...hs.map((h) => h.max)), n: hs.reduce((a, h) => a + h.n, 0) };
}

/** The q-quantile of a histogram: the upper edge of the bin it falls in (never above max). */
function histQuantile(h, q) {
  const want = Math.ceil(q * h.n);
  let seen = 0;
  for (const b of Object.keys(h.bins)
    .map(Number)
    .sort((x, y) => x - y)) {
    seen += h.bins[b];
    if (seen >= want) return Math.min(2 ** ((b + 1) / BINS_PER_OCTAVE), h.max);
  }
  return h.max;
}

module.exports = { quantile, median, summary, jain, shareSpread, histogram, mergeHistograms, histQuantile };
