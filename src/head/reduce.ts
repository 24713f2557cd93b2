/**
 * The head's first, fixed step: the 4,096 backbone features (both poolings) reduced to a
 * few hundred whitened principal components, so that the trained network is small and
 * each training epoch costs a second, not ten.
 *
 * PCA by subspace iteration on the covariance of a row sample, with every large product
 * in onnxruntime's GEMM (head/gemm.ts). math/pca.ts (plain-JS randomized SVD) does the
 * same job; measured on this machine for 25,000 x 4,096 rows, 8,000 sampled, it took 95 s
 * for 256 components and 223 s for 512; this takes ~10 s. The components only need to
 * span the high-variance subspace well (the network learns what to do with it), so a few
 * iterations in float32 are plenty.
 */
import { gemm, mat } from './gemm.js';
import { symmetricEigen } from '../math/eigen.js';
import { Random, sampleWithoutReplacement } from '../math/random.js';

export interface Reducer {
  /** Input width d. */
  d: number;
  /** Output width k. */
  k: number;
  mean: Float32Array;
  /** k x d, orthonormal rows, by decreasing variance. */
  components: Float32Array;
  /** Per component 1/sqrt(variance): outputs have unit variance on the fitted rows. */
  scale: Float32Array;
}

export interface ReducerOptions {
  /** Rows to estimate the covariance from (a seeded random sample). Default 10,000. */
  sampleRows?: number;
  iterations?: number;
  seed?: number;
  /**
   * Regularised whitening: component c is scaled by 1/sqrt(variance_c + shrinkage x the mean
   * variance of the kept components). 0 is full whitening, which blows up the weak
   * directions that only a background or a light change moves on a shopper's photo.
   */
  shrinkage?: number;
}

/** Fits a whitening PCA to the rows `rows` of `data` (n x d). */
export async function fitReducer(data: Float32Array, d: number, rows: Int32Array, k: number, options: ReducerOptions = {}): Promise<Reducer> {
  const rng = new Random(options.seed ?? 0);
  const m0 = rows.length;
  const m = Math.min(m0, options.sampleRows ?? 10_000);
  const picked = m < m0 ? sampleWithoutReplacement(rng, m0, m).map((i) => rows[i]) : rows;
  k = Math.max(1, Math.min(k, d, m));

  const mean64 = new Float64Array(d);
  for (const r of picked) for (let j = 0, o = r * d; j < d; j++) mean64[j] += data[o + j];
  const mean = new Float32Array(d);
  for (let j = 0; j < d; j++) mean[j] = mean64[j] / Math.max(1, m);

  const centred = new Float32Array(m * d);
  picked.forEach((r, i) => {
    const o = r * d, w = i * d;
    for (let j = 0; j < d; j++) centred[w + j] = data[o + j] - mean[j];
  });
  const cov = (await gemm(mat(centred, m, d), mat(centred, m, d), { transA: true })).data;
  const inv = 1 / Math.max(1, m - 1);
  for (let i = 0; i < cov.length; i++) cov[i] *= inv;

  // Subspace iteration with k + p vectors (stored as rows), orthonormalised through the
  // eigendecomposition of their small Gram matrix.
  const l = Math.min(d, k + Math.max(10, Math.ceil(k / 10)));
  let basis: Float32Array = new Float32Array(l * d);
  for (let i = 0; i < basis.length; i++) basis[i] = rng.normal();
  basis = await orthonormalise(basis, l, d);
  const iterations = options.iterations ?? 4;
  for (let it = 0; it < iterations; it++) {
    const next = (await gemm(mat(basis, l, d), mat(cov, d, d))).data;
    basis = await orthonormalise(next, l, d);
  }
  // Rayleigh-Ritz: the best k directions within the subspace, with their variances.
  const cb = (await gemm(mat(basis, l, d), mat(cov, d, d))).data;
  const t = (await gemm(mat(cb, l, d), mat(basis, l, d), { transB: true })).data;
  const eig = symmetricEigen(Float64Array.from(t), l);
  const rot = new Float32Array(k * l);
  for (let i = 0; i < k * l; i++) rot[i] = eig.vectors[i];
  const components = (await gemm(mat(rot, k, l), mat(basis, l, d))).data;
  const top = Math.max(eig.values[0], 1e-12);
  let meanVariance = 0;
  for (let c = 0; c < k; c++) meanVariance += Math.max(0, eig.values[c]) / k;
  const shrink = (options.shrinkage ?? 0) * meanVariance;
  const scale = new Float32Array(k);
  // A floor of 1e-6 of the top variance keeps (near-)constant directions from blowing up.
  for (let c = 0; c < k; c++) scale[c] = 1 / Math.sqrt(Math.max(eig.values[c], top * 1e-6) + shrink);
  return { d, k, mean, components: Float32Array.from(components), scale };
}

/** Rows of `v` (l x d) made orthonormal: v <- Λ^{-1/2} Uᵀ v where v vᵀ = U Λ Uᵀ. */
async function orthonormalise(v: Float32Array, l: number, d: number): Promise<Float32Array> {
  for (let pass = 0; pass < 2; pass++) {
    const g = (await gemm(mat(v, l, d), mat(v, l, d), { transB: true })).data;
    const eig = symmetricEigen(Float64Array.from(g), l);
    const top = Math.max(eig.values[0], 1e-30);
    const w = new Float32Array(l * l);
    for (let i = 0; i < l; i++) {
      const lambda = eig.values[i];
      // Directions the subspace lost (rounding) are dropped; they get a fresh start below.
      const s = lambda > top * 1e-10 ? 1 / Math.sqrt(lambda) : 0;
      for (let j = 0; j < l; j++) w[i * l + j] = eig.vectors[i * l + j] * s;
    }
    v = (await gemm(mat(w, l, l), mat(v, l, d))).data;
  }
  return v;
}

/** Reduced features of `n` rows: ((x - mean) · componentsᵀ) ⊙ scale, in blocks. */
export async function applyReducer(reducer: Reducer, data: Float32Array, n: number): Promise<Float32Array> {
  const { d, k } = reducer;
  const out = new Float32Array(n * k);
  const block = 2048;
  const shift = new Float32Array(k);
  // (x - mean) · c = x · c - mean · c: the products run on x directly.
  for (let c = 0; c < k; c++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += reducer.mean[j] * reducer.components[c * d + j];
    shift[c] = -s;
  }
  for (let start = 0; start < n; start += block) {
    const count = Math.min(block, n - start);
    const y = (await gemm(mat(data.subarray(start * d, (start + count) * d), count, d), mat(reducer.components, k, d), { transB: true, bias: shift })).data;
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < k; c++) out[(start + i) * k + c] = y[i * k + c] * reducer.scale[c];
    }
  }
  return out;
}
