import { describe, it, expect } from 'vitest';
import { LookalikeError } from '../../src/errors.js';
import { exactKnn } from '../../src/math/knn.js';
import { Random } from '../../src/math/random.js';
import { klDivergence, tsne, tsneExact } from '../../src/lab/viz/tsne.js';

/** `clusters` isotropic Gaussian blobs (unit variance) around centres drawn with
 *  standard deviation `spread`; points are interleaved so labels are i % clusters. */
function blobs(n: number, d: number, clusters: number, spread: number, seed: number): { X: Float32Array; labels: Int32Array } {
  const rng = new Random(seed);
  const centres = new Float64Array(clusters * d);
  rng.fillNormal(centres, spread);
  const X = new Float32Array(n * d);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % clusters;
    labels[i] = c;
    for (let j = 0; j < d; j++) X[i * d + j] = centres[c * d + j] + rng.normal();
  }
  return { X, labels };
}

/** Share of points whose nearest neighbour in the embedding has the same label. */
function nearestNeighbourAgreement(Y: Float32Array, labels: Int32Array): number {
  const n = labels.length;
  let same = 0;
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let bj = -1;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
      const dd = dx * dx + dy * dy;
      if (dd < best) {
        best = dd;
        bj = j;
      }
    }
    if (labels[bj] === labels[i]) same++;
  }
  return same / n;
}

function errorCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof LookalikeError ? e.code : 'other';
  }
  return undefined;
}

describe('exactKnn', () => {
  it('finds the same neighbours as a naive search, nearest first', () => {
    const n = 300, d = 7, k = 12;
    const { X } = blobs(n, d, 3, 3, 1);
    const { indices, distances } = exactKnn(X, n, d, k);
    for (let i = 0; i < n; i++) {
      const all: { j: number; dist: number }[] = [];
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        let s = 0;
        for (let t = 0; t < d; t++) s += (X[i * d + t] - X[j * d + t]) ** 2;
        all.push({ j, dist: s });
      }
      all.sort((a, b) => a.dist - b.dist || a.j - b.j);
      for (let t = 0; t < k; t++) {
        expect(indices[i * k + t]).toBe(all[t].j);
        expect(distances[i * k + t]).toBeCloseTo(all[t].dist, 9);
      }
    }
  });

  it('is exact when the data sit far from the origin', () => {
    // |x|^2 + |y|^2 - 2 x.y on uncentred data would lose these distances to rounding.
    const n = 200, d = 5, k = 4;
    const { X } = blobs(n, d, 2, 2, 2);
    for (let t = 0; t < X.length; t++) X[t] += 1e4;
    const { indices } = exactKnn(X, n, d, k);
    for (let i = 0; i < n; i += 17) {
      let best = Infinity, bj = -1;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        let s = 0;
        for (let t = 0; t < d; t++) s += (X[i * d + t] - X[j * d + t]) ** 2;
        if (s < best) {
          best = s;
          bj = j;
        }
      }
      expect(indices[i * k]).toBe(bj);
    }
  });
});

describe('tsne (Barnes-Hut)', () => {
  it('reaches a KL divergence within 5% of exact t-SNE on Gaussian clusters', () => {
    const n = 400, d = 10;
    const { X } = blobs(n, d, 4, 4, 3);
    for (const seed of [1, 2]) {
      const bh = tsne(X, n, d, { seed });
      const exact = tsneExact(X, n, d, { seed });
      const klBh = klDivergence(X, n, d, bh, 30);
      const klExact = klDivergence(X, n, d, exact, 30);
      expect(klExact).toBeGreaterThan(0);
      expect(Math.abs(klBh - klExact) / klExact).toBeLessThan(0.05);
    }
  });

  it('keeps clusters apart: the 2-D nearest neighbour shares the label for > 95% of points', () => {
    const n = 500, d = 10;
    const { X, labels } = blobs(n, d, 5, 4, 4);
    const Y = tsne(X, n, d, { seed: 7 });
    expect(Y.length).toBe(2 * n);
    expect(nearestNeighbourAgreement(Y, labels)).toBeGreaterThan(0.95);
  });

  it('with theta = 0 and every point a neighbour, follows exact t-SNE step for step', () => {
    // 3 * perplexity >= n - 1 makes the sparse P the full P, and theta = 0 makes the
    // quadtree sum exact, so only floating-point summation order differs. Over many
    // iterations such differences grow (a gain flips where a gradient is ~0), so compare
    // the early trajectory, which already moves the points far from their start.
    const n = 60, d = 6;
    const { X } = blobs(n, d, 3, 3, 5);
    const opts = { perplexity: 20, theta: 0, iterations: 25, seed: 3 };
    const bh = tsne(X, n, d, opts);
    const exact = tsneExact(X, n, d, opts);
    let scale = 0;
    for (const v of exact) scale = Math.max(scale, Math.abs(v));
    for (let t = 0; t < 2 * n; t++) expect(Math.abs(bh[t] - exact[t])).toBeLessThan(1e-4 * scale);
  });

  it('optimisation lowers KL far below that of a random layout', () => {
    const n = 300, d = 8;
    const { X } = blobs(n, d, 3, 4, 6);
    const Y = tsne(X, n, d, { seed: 2 });
    const rng = new Random(1);
    const R = new Float32Array(2 * n);
    rng.fillNormal(R, 10);
    const klY = klDivergence(X, n, d, Y, 30);
    const klR = klDivergence(X, n, d, R, 30);
    expect(klY).toBeGreaterThan(0);
    expect(klY).toBeLessThan(klR / 2);
  });

  it('is deterministic for a seed', () => {
    const n = 200, d = 5;
    const { X } = blobs(n, d, 3, 3, 8);
    const a = tsne(X, n, d, { seed: 11, iterations: 300 });
    const b = tsne(X, n, d, { seed: 11, iterations: 300 });
    const c = tsne(X, n, d, { seed: 12, iterations: 300 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('reports progress for neighbours, affinities and optimise, in order, ending at total', () => {
    const n = 150, d = 4;
    const { X } = blobs(n, d, 2, 3, 9);
    const calls: { it: number; total: number; phase: string }[] = [];
    tsne(X, n, d, { iterations: 100, exaggerationIterations: 30, onProgress: (it, total, phase) => calls.push({ it, total, phase }) });
    const phases = [...new Set(calls.map((c) => c.phase))];
    expect(phases).toEqual(['neighbours', 'affinities', 'optimise']);
    for (const phase of phases) {
      const mine = calls.filter((c) => c.phase === phase);
      const last = mine[mine.length - 1];
      expect(last.it).toBe(last.total);
      for (let i = 1; i < mine.length; i++) expect(mine[i].it).toBeGreaterThanOrEqual(mine[i - 1].it);
    }
    // Every optimisation iteration is reported, so a progress bar moves smoothly.
    expect(calls.filter((c) => c.phase === 'optimise').length).toBe(101);
  });

  it('PCA initialisation also separates clusters', () => {
    const n = 400, d = 10;
    const { X, labels } = blobs(n, d, 4, 4, 10);
    const Y = tsne(X, n, d, { seed: 1, init: 'pca' });
    expect(nearestNeighbourAgreement(Y, labels)).toBeGreaterThan(0.95);
  });

  it('copes with tiny inputs and duplicate points', () => {
    expect(tsne(new Float32Array(0), 0, 3).length).toBe(0);
    expect(Array.from(tsne(new Float32Array([1, 2, 3]), 1, 3))).toEqual([0, 0]);
    for (const n of [2, 3, 5]) {
      const { X } = blobs(n, 3, 1, 1, n);
      const Y = tsne(X, n, 3, { iterations: 50 });
      expect(Y.length).toBe(2 * n);
      expect(Y.every(Number.isFinite)).toBe(true);
    }
    // 100 copies of 2 distinct points: the quadtree must stop splitting duplicates.
    const n = 200;
    const X = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) X[2 * i] = i % 2;
    const Y = tsne(X, n, 2, { iterations: 100, perplexity: 10 });
    expect(Y.every(Number.isFinite)).toBe(true);
  });

  it('rejects bad options with BAD_OPTION', () => {
    const X = new Float32Array(20);
    expect(errorCode(() => tsne(X, 10, 2, { perplexity: 0 }))).toBe('BAD_OPTION');
    expect(errorCode(() => tsne(X, 10, 2, { theta: -1 }))).toBe('BAD_OPTION');
    expect(errorCode(() => tsne(X, 10, 2, { learningRate: -5 }))).toBe('BAD_OPTION');
    expect(errorCode(() => tsne(X, 10, 2, { iterations: 1.5 }))).toBe('BAD_OPTION');
    expect(errorCode(() => tsne(X, 9, 2))).toBe('BAD_OPTION');
    expect(errorCode(() => klDivergence(X, 10, 2, new Float32Array(3), 30))).toBe('BAD_OPTION');
  });
});
