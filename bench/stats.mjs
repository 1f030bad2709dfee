// Small statistics helpers shared by the benchmarks.

/** Median, min and max of a list of numbers (ms, rates, ...). */
export function summarize(values) {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n: 0, median: NaN, min: NaN, max: NaN };
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { n, median, min: s[0], max: s[n - 1] };
}

/** Rounds for display: integers as they are, whole numbers from 100 up, one decimal below. */
export function fmt(x) {
  if (!Number.isFinite(x)) return 'n/a';
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 100 ? String(Math.round(x)) : x.toFixed(1);
}

/** "median (min–max)" */
export function fmtSummary(s) {
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}
