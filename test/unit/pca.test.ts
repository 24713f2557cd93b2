import { describe, it, expect } from 'vitest';
import { LookalikeError } from '../../src/errors.js';
import { jacobiEigen, symmetricEigen } from '../../src/math/eigen.js';
import { gemmNT, orthonormalizeRows } from '../../src/math/linalg.js';
import { fitPca, projectPca, type Pca } from '../../src/math/pca.js';
import { Random, sampleWithoutReplacement } from '../../src/math/random.js';

/** n x d data with independent latent scales `scales[j]` along random orthonormal axes,
 *  plus an offset, so that the true principal axes are not the coordinate axes. */
function anisotropic(n: number, d: number, scales: number[], seed: number): Float32Array {
  const rng = new Random(seed);
  const R = new Float64Array(d * d);
  rng.fillNormal(R);
  orthonormalizeRows(R, d, d, rng);
  const X = new Float32Array(n * d);
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) z[a] = rng.normal() * scales[a];
    for (let j = 0; j < d; j++) {
      let s = 5 + j * 0.1;
      for (let a = 0; a < d; a++) s += z[a] * R[a * d + j];
      X[i * d + j] = s;
    }
  }
  return X;
}

function covariance(X: Float32Array, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += X[i * d + j] / n;
  const C = new Float64Array(d * d);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < d; a++) {
      const xa = X[i * d + a] - mean[a];
      for (let b = 0; b < d; b++) C[a * d + b] += (xa * (X[i * d + b] - mean[b])) / (n - 1);
    }
  }
  return C;
}

/** Mean squared cosine between the fitted subspace and the reference rows 0..k-1:
 *  1 when they span the same space. */
function subspaceAlignment(pca: Pca, ref: Float64Array, k: number): number {
  const d = pca.d;
  let s = 0;
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += pca.components[a * d + j] * ref[b * d + j];
      s += dot * dot;
    }
  }
  return s / k;
}

function maxOrthonormalityError(rows: Float32Array | Float64Array, k: number, d: number): number {
  let worst = 0;
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += rows[a * d + j] * rows[b * d + j];
      worst = Math.max(worst, Math.abs(dot - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

const geometric = (d: number, r: number): number[] => Array.from({ length: d }, (_, j) => 3 * r ** j);

describe('symmetric eigensolvers', () => {
  it('tridiagonal QL agrees with Jacobi and reconstructs the matrix', () => {
    const rng = new Random(11);
    const n = 40;
    const B = new Float64Array(n * n);
    rng.fillNormal(B);
    const A = new Float64Array(n * n);
    gemmNT(n, n, n, B, 0, n, B, 0, n, A, 0, n, false);
    const ql = symmetricEigen(A, n);
    const jac = jacobiEigen(A, n);
    for (let i = 0; i < n; i++) {
      expect(Math.abs(ql.values[i] - jac.values[i])).toBeLessThan(1e-9 * jac.values[0]);
      if (i > 0) expect(ql.values[i]).toBeLessThanOrEqual(ql.values[i - 1]);
    }
    for (const { values, vectors } of [ql, jac]) {
      expect(maxOrthonormalityError(vectors, n, n)).toBeLessThan(1e-10);
      // A v_i = lambda_i v_i for every pair.
      for (let i = 0; i < n; i++) {
        for (let r = 0; r < n; r++) {
          let av = 0;
          for (let c = 0; c < n; c++) av += A[r * n + c] * vectors[i * n + c];
          expect(Math.abs(av - values[i] * vectors[i * n + r])).toBeLessThan(1e-9 * values[0]);
        }
      }
    }
  });

  it('handles diagonal, repeated and zero eigenvalues', () => {
    const n = 6;
    const A = new Float64Array(n * n);
    [2, 2, 0, 5, 0, -1].forEach((v, i) => (A[i * n + i] = v));
    const { values, vectors } = symmetricEigen(A, n);
    expect(Array.from(values)).toEqual([5, 2, 2, 0, 0, -1]);
    expect(maxOrthonormalityError(vectors, n, n)).toBeLessThan(1e-12);
  });
});

describe('seeded random numbers', () => {
  it('repeat for a seed and differ between seeds', () => {
    const a = new Random(42), b = new Random(42), c = new Random(43);
    const xa = Array.from({ length: 5 }, () => a.nextUint32());
    const xb = Array.from({ length: 5 }, () => b.nextUint32());
    const xc = Array.from({ length: 5 }, () => c.nextUint32());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });

  it('normal deviates have mean 0 and variance 1', () => {
    const rng = new Random(5);
    const N = 200_000;
    let s = 0, s2 = 0;
    for (let i = 0; i < N; i++) {
      const x = rng.normal();
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / N)).toBeLessThan(0.01);
    expect(Math.abs(s2 / N - 1)).toBeLessThan(0.02);
  });

  it('samples distinct sorted indices', () => {
    const idx = sampleWithoutReplacement(new Random(1), 1000, 300);
    expect(idx.length).toBe(300);
    expect(new Set(idx).size).toBe(300);
    for (let i = 1; i < idx.length; i++) expect(idx[i]).toBeGreaterThan(idx[i - 1]);
    expect(idx[idx.length - 1]).toBeLessThan(1000);
  });
});

describe('fitPca', () => {
  it('matches an exact Jacobi eigendecomposition of the covariance (n=300, d=20)', () => {
    const n = 300, d = 20, k = 5;
    const X = anisotropic(n, d, geometric(d, 0.8), 1);
    const exact = jacobiEigen(covariance(X, n, d), d);
    for (const method of ['direct', 'covariance'] as const) {
      const pca = fitPca(X, n, d, k, { seed: 3, method, oversampling: 2 });
      for (let c = 0; c < k; c++) {
        expect(Math.abs(pca.explainedVariance[c] - exact.values[c]) / exact.values[c]).toBeLessThan(1e-3);
      }
      expect(subspaceAlignment(pca, exact.vectors, k)).toBeGreaterThan(1 - 1e-4);
      let trace = 0;
      for (let j = 0; j < d; j++) trace += exact.values[j];
      expect(Math.abs(pca.totalVariance - trace) / trace).toBeLessThan(1e-6);
    }
  });

  it('block Krylov route is accurate on a slowly decaying spectrum (n=400, d=96)', () => {
    const n = 400, d = 96, k = 8;
    // Power-law spectrum, the hard case for randomized methods (and the shape of CNN
    // embedding spectra).
    const scales = Array.from({ length: d }, (_, j) => 2 / (j + 1) ** 0.6);
    const X = anisotropic(n, d, scales, 2);
    const exact = jacobiEigen(covariance(X, n, d), d);
    for (const method of ['direct', 'covariance'] as const) {
      const pca = fitPca(X, n, d, k, { seed: 9, method });
      for (let c = 0; c < k; c++) {
        expect(Math.abs(pca.explainedVariance[c] - exact.values[c]) / exact.values[c]).toBeLessThan(1e-3);
      }
      expect(subspaceAlignment(pca, exact.vectors, k)).toBeGreaterThan(0.999);
    }
  });

  it('subspace-iteration route (k + p over half of d) is accurate', () => {
    const n = 300, d = 40, k = 20;
    const X = anisotropic(n, d, geometric(d, 0.85), 3);
    const exact = jacobiEigen(covariance(X, n, d), d);
    const pca = fitPca(X, n, d, k, { seed: 1, oversampling: 5, powerIterations: 4 });
    for (let c = 0; c < k; c++) {
      expect(Math.abs(pca.explainedVariance[c] - exact.values[c]) / exact.values[c]).toBeLessThan(1e-3);
    }
    expect(subspaceAlignment(pca, exact.vectors, k)).toBeGreaterThan(1 - 1e-4);
  });

  it('returns orthonormal components sorted by explained variance', () => {
    const n = 500, d = 64, k = 12;
    const X = anisotropic(n, d, geometric(d, 0.9), 4);
    for (const method of ['direct', 'covariance'] as const) {
      const pca = fitPca(X, n, d, k, { seed: 2, method });
      expect(pca.components.length).toBe(k * d);
      expect(maxOrthonormalityError(pca.components, k, d)).toBeLessThan(1e-5);
      for (let c = 1; c < k; c++) expect(pca.explainedVariance[c]).toBeLessThanOrEqual(pca.explainedVariance[c - 1]);
      let sum = 0;
      for (const v of pca.explainedVariance) sum += v;
      expect(sum).toBeLessThanOrEqual(pca.totalVariance * (1 + 1e-9));
    }
  });

  it('projection recovers data of known low rank exactly', () => {
    const n = 200, d = 30, r = 3;
    const rng = new Random(8);
    const basis = new Float64Array(r * d);
    rng.fillNormal(basis);
    const X = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const z = [rng.normal() * 4, rng.normal() * 2, rng.normal()];
      for (let j = 0; j < d; j++) {
        let s = 10 - j;
        for (let a = 0; a < r; a++) s += z[a] * basis[a * d + j];
        X[i * d + j] = s;
      }
    }
    // k > rank: the extra components carry no variance but must still be orthonormal.
    const k = 5;
    const pca = fitPca(X, n, d, k, { seed: 1, method: 'direct' });
    expect(maxOrthonormalityError(pca.components, k, d)).toBeLessThan(1e-5);
    for (let c = r; c < k; c++) expect(pca.explainedVariance[c]).toBeLessThan(1e-8 * pca.explainedVariance[0]);
    let explained = 0;
    for (let c = 0; c < r; c++) explained += pca.explainedVariance[c];
    expect(Math.abs(explained - pca.totalVariance) / pca.totalVariance).toBeLessThan(1e-5);

    const Y = projectPca(pca, X, n);
    expect(Y.length).toBe(n * k);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        let rec = pca.mean[j];
        for (let c = 0; c < k; c++) rec += Y[i * k + c] * pca.components[c * d + j];
        worst = Math.max(worst, Math.abs(rec - X[i * d + j]));
      }
    }
    expect(worst).toBeLessThan(1e-3);
  });

  it('projectPca equals (x - mean) . component', () => {
    const n = 50, d = 16, k = 4;
    const X = anisotropic(n, d, geometric(d, 0.7), 6);
    const pca = fitPca(X, n, d, k);
    const Y = projectPca(pca, X, n);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += (X[i * d + j] - pca.mean[j]) * pca.components[c * d + j];
        expect(Y[i * k + c]).toBeCloseTo(s, 4);
      }
    }
  });

  it('is deterministic for a seed, and both routes agree', () => {
    const n = 400, d = 48, k = 6;
    const X = anisotropic(n, d, geometric(d, 0.8), 7);
    const a = fitPca(X, n, d, k, { seed: 5 });
    const b = fitPca(X, n, d, k, { seed: 5 });
    expect(Array.from(a.components)).toEqual(Array.from(b.components));
    expect(Array.from(a.explainedVariance)).toEqual(Array.from(b.explainedVariance));
    const direct = fitPca(X, n, d, k, { seed: 5, method: 'direct' });
    const cov = fitPca(X, n, d, k, { seed: 5, method: 'covariance' });
    for (let c = 0; c < k; c++) {
      expect(Math.abs(direct.explainedVariance[c] - cov.explainedVariance[c]) / cov.explainedVariance[c]).toBeLessThan(1e-9);
    }
  });

  it('sampleRows fits on a subset but centres with the mean of all rows', () => {
    const n = 3000, d = 24, k = 3;
    const X = anisotropic(n, d, geometric(d, 0.6), 8);
    const full = fitPca(X, n, d, k, { seed: 1 });
    const sampled = fitPca(X, n, d, k, { seed: 1, sampleRows: 600 });
    expect(Array.from(sampled.mean)).toEqual(Array.from(full.mean));
    for (let c = 0; c < k; c++) {
      // Sampling error of a variance estimate from 600 rows is ~sqrt(2/600) = 6%.
      expect(Math.abs(sampled.explainedVariance[c] - full.explainedVariance[c]) / full.explainedVariance[c]).toBeLessThan(0.25);
    }
    expect(subspaceAlignment(sampled, Float64Array.from(full.components), k)).toBeGreaterThan(0.95);
  });

  it('copes with a single row and with constant data', () => {
    const d = 8;
    const one = fitPca(Float32Array.from({ length: d }, (_, j) => j), 1, d, 3);
    expect(Array.from(one.explainedVariance)).toEqual([0, 0, 0]);
    expect(maxOrthonormalityError(one.components, 3, d)).toBeLessThan(1e-5);
    const flat = fitPca(new Float32Array(20 * d).fill(2), 20, d, 2);
    expect(flat.totalVariance).toBe(0);
    expect(maxOrthonormalityError(flat.components, 2, d)).toBeLessThan(1e-5);
  });

  it('rejects impossible shapes with BAD_OPTION', () => {
    const X = new Float32Array(40);
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return e instanceof LookalikeError ? e.code : 'other';
      }
      return undefined;
    };
    expect(code(() => fitPca(X, 10, 4, 5))).toBe('BAD_OPTION');
    expect(code(() => fitPca(X, 10, 4, 0))).toBe('BAD_OPTION');
    expect(code(() => fitPca(X, 9, 4, 2))).toBe('BAD_OPTION');
    expect(code(() => fitPca(X, 10, 4, 2, { sampleRows: 0 }))).toBe('BAD_OPTION');
    const pca = fitPca(X, 10, 4, 2);
    expect(code(() => projectPca(pca, new Float32Array(7), 2))).toBe('BAD_OPTION');
  });
});
