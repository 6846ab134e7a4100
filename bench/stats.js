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

module.exports = { quantile, median, summary, jain, shareSpread };
