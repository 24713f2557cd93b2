/**
 * Exact k-nearest neighbours (Euclidean) of every row of a dense matrix, by blocked
 * brute force.
 *
 * For the inputs t-SNE sees (tens of thousands of rows, ~50 dimensions after PCA) a
 * well-tiled brute force beats a vantage-point tree: its cost is fixed (n^2 d / 2
 * multiply-adds, at the ~2 G/s the GEMM kernel sustains) whereas a VP tree degrades
 * towards brute force plus bookkeeping as the intrinsic dimension grows, which is
 * exactly the case for CNN embeddings.
 */
import { gemmNT } from './linalg.js';

export interface KnnResult {
  k: number;
  /** n x k, row i lists the neighbours of i (never i itself), nearest first. */
  indices: Int32Array;
  /** n x k squared Euclidean distances matching `indices`. */
  distances: Float64Array;
}

/** Rows per tile side: a 128 x 128 tile of dot products is 128 KiB and its two 128 x d
 *  operand panels stay in L2 for d up to a few hundred. */
const TILE = 128;

/**
 * @param onProgress called after each tile row with (tiles done, total tiles).
 */
export function exactKnn(
  data: Float32Array, n: number, d: number, k: number,
  onProgress?: (done: number, total: number) => void,
): KnnResult {
  if (data.length !== n * d) throw new RangeError(`data has ${data.length} values, expected ${n} x ${d}`);
  if (!Number.isInteger(k) || k < 0 || k > Math.max(n - 1, 0)) {
    throw new RangeError(`need 0 <= k <= n - 1 (${n - 1}), got ${k}`);
  }
  const indices = new Int32Array(n * k);
  const distances = new Float64Array(n * k);
  if (k === 0 || n === 0) return { k, indices, distances };

  // Centre before using |x|^2 + |y|^2 - 2 x.y: distances are translation-invariant, and
  // a large common offset would otherwise cancel away most of the significant digits.
  const X = new Float64Array(n * d);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const sq = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const v = data[i * d + j] - mean[j];
      X[i * d + j] = v;
      s += v * v;
    }
    sq[i] = s;
  }

  // One bounded max-heap per row (root = current k-th distance), filled symmetrically:
  // each pair (i, j) is computed once and offered to both rows' heaps.
  const heapD = new Float64Array(n * k).fill(Infinity);
  const heapI = new Int32Array(n * k).fill(-1);
  const tile = new Float64Array(TILE * TILE);
  const blocks = Math.ceil(n / TILE);
  const totalTiles = (blocks * (blocks + 1)) / 2;
  let doneTiles = 0;
  onProgress?.(0, totalTiles);
  for (let i0 = 0; i0 < n; i0 += TILE) {
    const ib = Math.min(TILE, n - i0);
    for (let j0 = i0; j0 < n; j0 += TILE) {
      const jb = Math.min(TILE, n - j0);
      gemmNT(ib, jb, d, X, i0 * d, d, X, j0 * d, d, tile, 0, jb, false);
      for (let a = 0; a < ib; a++) {
        const i = i0 + a;
        const sqi = sq[i];
        const hi = i * k;
        const startB = j0 === i0 ? a + 1 : 0;
        for (let b = startB; b < jb; b++) {
          const j = j0 + b;
          let dist = sqi + sq[j] - 2 * tile[a * jb + b];
          if (dist < 0) dist = 0;
          if (dist < heapD[hi]) heapReplaceTop(heapD, heapI, hi, k, dist, j);
          const hj = j * k;
          if (dist < heapD[hj]) heapReplaceTop(heapD, heapI, hj, k, dist, i);
        }
      }
      doneTiles++;
    }
    onProgress?.(doneTiles, totalTiles);
  }

  // The GEMM distances lose a few digits to cancellation; recompute the chosen ones
  // directly (n k d work, small next to the search) and sort each row.
  const order = new Int32Array(k);
  const tmpD = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const hi = i * k;
    for (let t = 0; t < k; t++) {
      const j = heapI[hi + t];
      let s = 0;
      for (let p = 0; p < d; p++) {
        const v = X[i * d + p] - X[j * d + p];
        s += v * v;
      }
      tmpD[t] = s;
      order[t] = t;
    }
    // Ties broken by index so the result does not depend on heap history.
    order.sort((x, y) => tmpD[x] - tmpD[y] || heapI[hi + x] - heapI[hi + y]);
    for (let t = 0; t < k; t++) {
      indices[hi + t] = heapI[hi + order[t]];
      distances[hi + t] = tmpD[order[t]];
    }
  }
  return { k, indices, distances };
}

/** Replaces the root of the max-heap at [off, off + k) and sifts it down. */
function heapReplaceTop(hd: Float64Array, hidx: Int32Array, off: number, k: number, dist: number, idx: number): void {
  let pos = 0;
  for (;;) {
    const l = 2 * pos + 1;
    if (l >= k) break;
    const r = l + 1;
    let c = l;
    if (r < k && hd[off + r] > hd[off + l]) c = r;
    if (hd[off + c] <= dist) break;
    hd[off + pos] = hd[off + c];
    hidx[off + pos] = hidx[off + c];
    pos = c;
  }
  hd[off + pos] = dist;
  hidx[off + pos] = idx;
}
