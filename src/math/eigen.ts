/**
 * Eigendecomposition of real symmetric matrices (row-major Float64Array, n x n).
 *
 * Both solvers return eigenvalues in descending order and the eigenvectors as the rows
 * of `vectors` (row i belongs to values[i]), which is the layout PCA wants for its
 * components.
 */

export interface SymmetricEigen {
  values: Float64Array;
  /** n x n, row i is the unit eigenvector of values[i]. */
  vectors: Float64Array;
}

/**
 * Householder tridiagonalisation + implicit QL (EISPACK tred2/tql2 as published in
 * JAMA). O(n^3) with a small constant; used for the (k+p) x (k+p) problems of
 * randomized PCA, where k+p can exceed 1000 and Jacobi would be 5-10x slower.
 *
 * JAMA indexes V[row][col] and walks its inner loops down columns; here the working
 * matrix is stored transposed (W[j*n + k] holds V[k][j]) so that every inner loop is
 * contiguous, and so that the eigenvectors, JAMA's columns, come out as rows.
 */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  if (a.length < n * n) throw new RangeError(`matrix has ${a.length} entries, need ${n * n}`);
  const W = new Float64Array(n * n);
  // Symmetrise on the way in, so a matrix that is symmetric only up to rounding
  // (e.g. B * B^T computed in blocks) is treated consistently.
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) W[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  if (n === 0) return { values: d, vectors: W };
  tred2(W, d, e, n);
  tql2(W, d, e, n);
  return sortDescending(d, W, n);
}

function tred2(W: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = W[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = W[j * n + i - 1];
        W[j * n + i] = 0;
        W[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        const wj = j * n;
        W[i * n + j] = f;
        g = e[j] + W[wj + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const v = W[wj + k];
          g += v * d[k];
          e[k] += v * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        const wj = j * n;
        for (let k = j; k <= i - 1; k++) W[wj + k] -= f * e[k] + g * d[k];
        d[j] = W[wj + i - 1];
        W[wj + i] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate transformations.
  for (let i = 0; i < n - 1; i++) {
    const wi = i * n;
    const wi1 = (i + 1) * n;
    W[wi + n - 1] = W[wi + i];
    W[wi + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = W[wi1 + k] / h;
      for (let j = 0; j <= i; j++) {
        const wj = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += W[wi1 + k] * W[wj + k];
        for (let k = 0; k <= i; k++) W[wj + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) W[wi1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = W[j * n + n - 1];
    W[j * n + n - 1] = 0;
  }
  W[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

function hypot(a: number, b: number): number {
  const x = Math.abs(a);
  const y = Math.abs(b);
  if (x > y) {
    const r = y / x;
    return x * Math.sqrt(1 + r * r);
  }
  if (y === 0) return 0;
  const r = x / y;
  return y * Math.sqrt(1 + r * r);
}

function tql2(W: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new Error('symmetricEigen: QL iteration did not converge');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const wi = i * n;
          const wi1 = wi + n;
          for (let k = 0; k < n; k++) {
            const t = W[wi1 + k];
            const u = W[wi + k];
            W[wi1 + k] = s * u + c * t;
            W[wi + k] = c * u - s * t;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

function sortDescending(values: Float64Array, vectors: Float64Array, n: number): SymmetricEigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => values[y] - values[x]);
  const v = new Float64Array(n);
  const vec = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    const src = order[r];
    v[r] = values[src];
    vec.set(vectors.subarray(src * n, src * n + n), r * n);
  }
  return { values: v, vectors: vec };
}

/**
 * Cyclic Jacobi rotations. Slow (several O(n^3) sweeps) but simple and accurate to
 * full precision on every eigenvalue, small ones included, which makes it the reference
 * the faster solvers are tested against.
 */
export function jacobiEigen(a: Float64Array, n: number, maxSweeps = 100): SymmetricEigen {
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) A[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
  }
  // V holds eigenvectors as rows: each rotation mixes rows p and q.
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += A[i] * A[i];
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] * A[p * n + q];
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (apq === 0) continue;
        const app = A[p * n + p];
        const aqq = A[q * n + q];
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p];
          const akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k];
          const aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vp = V[p * n + k];
          const vq = V[q * n + k];
          V[p * n + k] = c * vp - s * vq;
          V[q * n + k] = s * vp + c * vq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = A[i * n + i];
  return sortDescending(values, V, n);
}
