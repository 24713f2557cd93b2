/**
 * Dense kernels shared by PCA and t-SNE. Everything is row-major Float64Array with
 * explicit offsets and leading dimensions, so callers can work on sub-blocks without
 * copying.
 */
import { LookalikeError } from '../errors.js';
import type { Random } from './random.js';

/**
 * C[i, j] (+)= sum_p A[i, p] * B[j, p]  for i < m, j < n, p < k ("A times B-transposed").
 *
 * Both operands are read along contiguous rows, which is the only GEMM shape that is
 * fast in plain JS: the 4x4 register tile does 16 multiply-adds per 8 loads, and V8
 * keeps the 16 accumulators in registers (about 2 G multiply-adds/s on one core,
 * 4-5x a naive triple loop).
 */
export function gemmNT(
  m: number, n: number, k: number,
  A: Float64Array, aOff: number, lda: number,
  B: Float64Array, bOff: number, ldb: number,
  C: Float64Array, cOff: number, ldc: number,
  accumulate: boolean,
): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = aOff + i * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
    const c0 = cOff + i * ldc, c1 = c0 + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
    for (let j = 0; j < n4; j += 4) {
      const b0 = bOff + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0;
      let s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0;
      let s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = B[b0 + p], x1 = B[b1 + p], x2 = B[b2 + p], x3 = B[b3 + p];
        let y = A[a0 + p];
        s00 += y * x0; s01 += y * x1; s02 += y * x2; s03 += y * x3;
        y = A[a1 + p];
        s10 += y * x0; s11 += y * x1; s12 += y * x2; s13 += y * x3;
        y = A[a2 + p];
        s20 += y * x0; s21 += y * x1; s22 += y * x2; s23 += y * x3;
        y = A[a3 + p];
        s30 += y * x0; s31 += y * x1; s32 += y * x2; s33 += y * x3;
      }
      if (accumulate) {
        C[c0 + j] += s00; C[c0 + j + 1] += s01; C[c0 + j + 2] += s02; C[c0 + j + 3] += s03;
        C[c1 + j] += s10; C[c1 + j + 1] += s11; C[c1 + j + 2] += s12; C[c1 + j + 3] += s13;
        C[c2 + j] += s20; C[c2 + j + 1] += s21; C[c2 + j + 2] += s22; C[c2 + j + 3] += s23;
        C[c3 + j] += s30; C[c3 + j + 1] += s31; C[c3 + j + 2] += s32; C[c3 + j + 3] += s33;
      } else {
        C[c0 + j] = s00; C[c0 + j + 1] = s01; C[c0 + j + 2] = s02; C[c0 + j + 3] = s03;
        C[c1 + j] = s10; C[c1 + j + 1] = s11; C[c1 + j + 2] = s12; C[c1 + j + 3] = s13;
        C[c2 + j] = s20; C[c2 + j + 1] = s21; C[c2 + j + 2] = s22; C[c2 + j + 3] = s23;
        C[c3 + j] = s30; C[c3 + j + 1] = s31; C[c3 + j + 2] = s32; C[c3 + j + 3] = s33;
      }
    }
    for (let j = n4; j < n; j++) {
      const b0 = bOff + j * ldb;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let p = 0; p < k; p++) {
        const x = B[b0 + p];
        s0 += A[a0 + p] * x; s1 += A[a1 + p] * x; s2 += A[a2 + p] * x; s3 += A[a3 + p] * x;
      }
      if (accumulate) {
        C[c0 + j] += s0; C[c1 + j] += s1; C[c2 + j] += s2; C[c3 + j] += s3;
      } else {
        C[c0 + j] = s0; C[c1 + j] = s1; C[c2 + j] = s2; C[c3 + j] = s3;
      }
    }
  }
  for (let i = m4; i < m; i++) {
    const a0 = aOff + i * lda;
    const c0 = cOff + i * ldc;
    for (let j = 0; j < n; j++) {
      const b0 = bOff + j * ldb;
      let s = 0;
      for (let p = 0; p < k; p++) s += A[a0 + p] * B[b0 + p];
      if (accumulate) C[c0 + j] += s;
      else C[c0 + j] = s;
    }
  }
}

export function dot(a: Float64Array, aOff: number, b: Float64Array, bOff: number, len: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const len4 = len - (len % 4);
  let p = 0;
  for (; p < len4; p += 4) {
    s0 += a[aOff + p] * b[bOff + p];
    s1 += a[aOff + p + 1] * b[bOff + p + 1];
    s2 += a[aOff + p + 2] * b[bOff + p + 2];
    s3 += a[aOff + p + 3] * b[bOff + p + 3];
  }
  for (; p < len; p++) s0 += a[aOff + p] * b[bOff + p];
  return s0 + s1 + s2 + s3;
}

/**
 * Makes the `rows` rows (each `cols` long) of V orthonormal, in order, in place:
 * row r ends up spanning the same flag as rows 0..r did, as far as possible.
 *
 * Classical Gram-Schmidt done twice per row ("twice is enough", Giraud et al. 2005):
 * as accurate as Householder for this purpose, but it works row by row on contiguous
 * memory and its projections are batched dot products. A row that is (numerically)
 * already in the span of the rows before it is replaced by a random direction
 * orthogonalised against them, so the result always has `rows` orthonormal rows;
 * this is how rank-deficient data still yields k orthonormal components.
 *
 * Rows before `firstRow` are taken as already orthonormal and left alone, which lets a
 * basis be extended block by block.
 */
export function orthonormalizeRows(V: Float64Array, rows: number, cols: number, rng: Random, firstRow = 0): void {
  if (rows > cols) throw new RangeError(`cannot make ${rows} orthonormal rows of length ${cols}`);
  const h = new Float64Array(rows);
  for (let r = firstRow; r < rows; r++) {
    const off = r * cols;
    const norm0 = Math.sqrt(dot(V, off, V, off, cols));
    let attempts = 0;
    for (;;) {
      const before = attempts === 0 ? norm0 : Math.sqrt(dot(V, off, V, off, cols));
      for (let pass = 0; pass < 2; pass++) {
        if (r > 0) {
          gemmNT(r, 1, cols, V, 0, cols, V, off, cols, h, 0, 1, false);
          // Four rows per sweep: a quarter of the loads and stores of row r.
          let q = 0;
          for (; q + 4 <= r; q += 4) {
            const c0 = h[q], c1 = h[q + 1], c2 = h[q + 2], c3 = h[q + 3];
            const o0 = q * cols, o1 = o0 + cols, o2 = o1 + cols, o3 = o2 + cols;
            for (let p = 0; p < cols; p++) {
              V[off + p] -= c0 * V[o0 + p] + c1 * V[o1 + p] + c2 * V[o2 + p] + c3 * V[o3 + p];
            }
          }
          for (; q < r; q++) {
            const c = h[q];
            const qo = q * cols;
            for (let p = 0; p < cols; p++) V[off + p] -= c * V[qo + p];
          }
        }
      }
      const norm = Math.sqrt(dot(V, off, V, off, cols));
      // Below this ratio the remainder is rounding noise from the rows already taken,
      // not a direction of its own.
      if (norm > 1e-10 * before && norm > 0 && Number.isFinite(norm)) {
        const inv = 1 / norm;
        for (let p = 0; p < cols; p++) V[off + p] *= inv;
        break;
      }
      if (++attempts > 10) throw new Error('orthonormalizeRows: could not complete the basis');
      for (let p = 0; p < cols; p++) V[off + p] = rng.normal();
    }
  }
}

/** Refuses a flat matrix whose length is not n x d, naming the function the caller used. */
export function checkShape(data: Float32Array, n: number, d: number, fn: string): void {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(d) || d < 1) {
    throw new LookalikeError('BAD_OPTION', { message: `${fn}: bad shape n=${n}, d=${d}.` });
  }
  if (data.length !== n * d) {
    throw new LookalikeError('BAD_OPTION', {
      message: `${fn}: data has ${data.length} values, but n x d = ${n} x ${d} = ${n * d}.`,
    });
  }
}

/**
 * Dot product of `dim` floats of `a` from `offset` with `b` from 0. Four accumulators
 * break the dependency chain of the additions: ~2x faster than one in V8.
 */
export function dotAt(a: Float32Array, offset: number, b: Float32Array, dim: number): number {
  const tail = dim & ~3;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let j = 0; j < tail; j += 4) {
    s0 += a[offset + j] * b[j];
    s1 += a[offset + j + 1] * b[j + 1];
    s2 += a[offset + j + 2] * b[j + 2];
    s3 += a[offset + j + 3] * b[j + 3];
  }
  let s = s0 + s1 + s2 + s3;
  for (let j = tail; j < dim; j++) s += a[offset + j] * b[j];
  return s;
}
