/**
 * Small summaries of measured values, shared by the benchmarks, evaluation and tuning.
 */

/** Nearest-rank percentile of sorted values (NaN when there are none). */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export interface Histogram { bins: number[]; same: number[]; different: number[] }

/** Bins similarity scores of same-class and different-class neighbours on a shared grid. */
export function scoreHistogram(same: ArrayLike<number>, different: ArrayLike<number>, binCount = 40): Histogram {
  let lo = Infinity, hi = -Infinity;
  for (const list of [same, different]) for (let i = 0; i < list.length; i++) { lo = Math.min(lo, list[i]); hi = Math.max(hi, list[i]); }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-6) { lo -= 0.01; hi += 0.01; }
  const width = (hi - lo) / binCount;
  const bins = Array.from({ length: binCount + 1 }, (_, i) => lo + i * width);
  const count = (list: ArrayLike<number>) => {
    const out = new Array<number>(binCount).fill(0);
    for (let i = 0; i < list.length; i++) out[Math.min(binCount - 1, Math.floor((list[i] - lo) / width))]++;
    return out;
  };
  return { bins, same: count(same), different: count(different) };
}
