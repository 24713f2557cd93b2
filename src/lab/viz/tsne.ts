/**
 * t-SNE (van der Maaten & Hinton 2008) for the catalogue map, with the Barnes-Hut
 * approximation (van der Maaten 2014) so that 31,000 items take minutes, not hours.
 *
 *  1. neighbours: exact 3 * perplexity nearest neighbours of each point (blocked brute
 *     force, see math/knn.ts);
 *  2. affinities: a Gaussian per point whose width is binary-searched to match the
 *     perplexity, over its neighbours only; symmetrised and normalised to sum to 1;
 *  3. optimise: gradient descent on KL(P || Q) with momentum and per-coordinate gains
 *     (delta-bar-delta), as in bhtsne. Attraction is summed over the sparse P;
 *     repulsion is approximated with a quadtree rebuilt every iteration.
 *
 * The gradient includes the factor 4 of dKL/dy, so learning rates are in the same
 * units as scikit-learn's and the 'auto' rule max(n / earlyExaggeration / 4, 50)
 * means what it means there (it equals openTSNE's n / exaggeration without the 4).
 *
 * Everything is single-threaded and seeded, so a given input and seed always give the
 * same map.
 */
import { LookalikeError } from '../../errors.js';
import { exactKnn } from '../../math/knn.js';
import { checkShape } from '../../math/linalg.js';
import { fitPca, projectPca } from '../../math/pca.js';
import { Random } from '../../math/random.js';

export interface TsneOptions {
  /** Effective number of neighbours each point's Gaussian covers. Default 30. */
  perplexity?: number;
  /** Gradient-descent iterations in total, exaggeration phase included. Default 1000. */
  iterations?: number;
  /** Barnes-Hut accuracy: a cell of side s at distance r is summarised by its centre
   *  of mass when s / r < theta. 0 is exact (slow). Default 0.5. */
  theta?: number;
  /** Default 'auto' = max(n / earlyExaggeration / 4, 50) (scikit-learn's rule). */
  learningRate?: number | 'auto';
  /** Factor on P during the first iterations, which lets clusters form. Default 12. */
  earlyExaggeration?: number;
  /** Iterations with exaggeration (and momentum 0.5). Default 250. */
  exaggerationIterations?: number;
  /** Seeds the initial layout. Default 0. */
  seed?: number;
  /** 'random' (default): N(0, 1e-4^2) as in bhtsne. 'pca': the first two principal
   *  components scaled to standard deviation 1e-4, which keeps the global arrangement
   *  of clusters more faithful. */
  init?: 'random' | 'pca';
  /** Progress for a progress bar: called at the start and end of each phase and
   *  regularly in between (every optimisation iteration). */
  onProgress?: (iteration: number, total: number, phase: 'neighbours' | 'affinities' | 'optimise') => void;
}

interface Settings {
  perplexity: number;
  iterations: number;
  theta: number;
  learningRate: number;
  earlyExaggeration: number;
  exaggerationIterations: number;
  seed: number;
  init: 'random' | 'pca';
  onProgress: NonNullable<TsneOptions['onProgress']> | undefined;
}

const MOMENTUM = 0.5;
const FINAL_MOMENTUM = 0.8;
const MIN_GAIN = 0.01;
const INIT_SD = 1e-4;
/** 10,000^2 doubles is 800 MB: beyond that the reference implementation is useless. */
const EXACT_MAX_POINTS = 10_000;

/** Barnes-Hut t-SNE: n x 2 embedding, row-major. */
export function tsne(data: Float32Array, n: number, d: number, opts: TsneOptions = {}): Float32Array {
  checkShape(data, n, d, 'tsne');
  const s = settings(n, opts);
  if (n <= 1) return new Float32Array(2 * n);
  const k = neighbourCount(n, s.perplexity);
  const knn = exactKnn(data, n, d, k, (done, total) => s.onProgress?.(done, total, 'neighbours'));
  const P = sparseAffinities(knn.indices, knn.distances, n, k, s.perplexity, s.onProgress);
  const Y = initialLayout(data, n, d, s);
  const tree = new QuadTree(n);
  const attr = new Float64Array(2 * n);
  const grad = (y: Float64Array, exaggeration: number, out: Float64Array): void => {
    attractiveForces(P, y, n, attr);
    const sumQ = tree.repulsiveForces(y, s.theta, out);
    const c = 4 / sumQ;
    for (let t = 0; t < 2 * n; t++) out[t] = 4 * exaggeration * attr[t] - c * out[t];
  };
  optimise(Y, n, s, grad);
  return Float32Array.from(Y);
}

/**
 * Exact t-SNE: dense P over all points, exact O(n^2) gradient, same optimiser. Memory
 * and time are quadratic; it is the reference the Barnes-Hut version is tested
 * against, for a few thousand points at most.
 */
export function tsneExact(data: Float32Array, n: number, d: number, opts: TsneOptions = {}): Float32Array {
  checkShape(data, n, d, 'tsneExact');
  if (n > EXACT_MAX_POINTS) {
    throw new LookalikeError('BAD_OPTION', {
      message: `tsneExact keeps an n x n matrix; ${n} points is too many (at most ${EXACT_MAX_POINTS}). Use tsne().`,
    });
  }
  const s = settings(n, opts);
  if (n <= 1) return new Float32Array(2 * n);
  s.onProgress?.(0, 1, 'neighbours');
  const D = squaredDistanceMatrix(data, n, d);
  s.onProgress?.(1, 1, 'neighbours');
  const P = denseAffinities(D, n, s.perplexity, s.onProgress);
  const Y = initialLayout(data, n, d, s);
  // Attraction goes to `out`, repulsion here: it can only be scaled by 1/Z once the
  // whole sum Z is known.
  const rep = new Float64Array(2 * n);
  const grad = (y: Float64Array, exaggeration: number, out: Float64Array): void => {
    let sumQ = 0;
    for (let i = 0; i < n; i++) {
      const xi = y[2 * i], yi = y[2 * i + 1];
      let ax = 0, ay = 0, rx = 0, ry = 0;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
        const q = 1 / (1 + dx * dx + dy * dy);
        sumQ += q;
        const pq = P[i * n + j] * q;
        ax += pq * dx;
        ay += pq * dy;
        const qq = q * q;
        rx += qq * dx;
        ry += qq * dy;
      }
      out[2 * i] = ax;
      out[2 * i + 1] = ay;
      rep[2 * i] = rx;
      rep[2 * i + 1] = ry;
    }
    const c = 4 / sumQ;
    for (let t = 0; t < 2 * n; t++) out[t] = 4 * exaggeration * out[t] - c * rep[t];
  };
  optimise(Y, n, s, grad);
  return Float32Array.from(Y);
}

/**
 * Exact KL(P || Q) of an embedding, with P the symmetrised, normalised
 * perplexity-calibrated Gaussian affinities over all pairs (as in exact t-SNE) and Q
 * the Student-t affinities of the embedding. O(n^2 d) time, O(n) memory.
 */
export function klDivergence(
  data: Float32Array, n: number, d: number, embedding: Float32Array | Float64Array, perplexity: number,
): number {
  checkShape(data, n, d, 'klDivergence');
  if (embedding.length !== 2 * n) {
    throw new LookalikeError('BAD_OPTION', { message: `klDivergence: embedding has ${embedding.length} values, expected ${2 * n}.` });
  }
  if (!(perplexity > 0) || !Number.isFinite(perplexity)) {
    throw new LookalikeError('BAD_OPTION', { message: `perplexity must be a positive number, got ${perplexity}.` });
  }
  if (n < 2) return 0;
  const perp = clampPerplexity(n, perplexity);
  const logPerp = Math.log(perp);
  // Per point i: beta_i, the shift (smallest distance) and normaliser of p_{.|i}, so that
  // p_{j|i} = exp(-beta_i (D_ij - shift_i)) / Z_i can be recomputed pair by pair.
  const beta = new Float64Array(n);
  const shift = new Float64Array(n);
  const norm = new Float64Array(n);
  const row = new Float64Array(n - 1);
  const prow = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let j = 0; j < n; j++) if (j !== i) row[t++] = sqDist(data, d, i, j);
    const r = calibrate(row, 0, n - 1, logPerp, prow, 0);
    beta[i] = r.beta;
    shift[i] = r.shift;
    norm[i] = r.sum;
  }
  let sumQ = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = embedding[2 * i] - embedding[2 * j], dy = embedding[2 * i + 1] - embedding[2 * j + 1];
      sumQ += 2 / (1 + dx * dx + dy * dy);
    }
  }
  let kl = 0;
  const twoN = 2 * n;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const D = sqDist(data, d, i, j);
      const pji = Math.exp(-beta[i] * (D - shift[i])) / norm[i];
      const pij = Math.exp(-beta[j] * (D - shift[j])) / norm[j];
      const p = (pji + pij) / twoN;
      if (p <= 0) continue;
      const dx = embedding[2 * i] - embedding[2 * j], dy = embedding[2 * i + 1] - embedding[2 * j + 1];
      const q = 1 / (1 + dx * dx + dy * dy) / sumQ;
      kl += 2 * p * Math.log(p / q);
    }
  }
  return kl;
}

// ---------------------------------------------------------------------------------
// Options


function settings(n: number, o: TsneOptions): Settings {
  const bad = (message: string): never => {
    throw new LookalikeError('BAD_OPTION', { message });
  };
  const perplexity = o.perplexity ?? 30;
  if (!(perplexity > 0) || !Number.isFinite(perplexity)) bad(`perplexity must be a positive number, got ${perplexity}.`);
  const iterations = o.iterations ?? 1000;
  if (!Number.isInteger(iterations) || iterations < 0) bad(`iterations must be a whole number >= 0, got ${iterations}.`);
  const theta = o.theta ?? 0.5;
  if (!(theta >= 0) || !Number.isFinite(theta)) bad(`theta must be a number >= 0, got ${theta}.`);
  const earlyExaggeration = o.earlyExaggeration ?? 12;
  if (!(earlyExaggeration > 0) || !Number.isFinite(earlyExaggeration)) {
    bad(`earlyExaggeration must be a positive number, got ${earlyExaggeration}.`);
  }
  const exaggerationIterations = o.exaggerationIterations ?? 250;
  if (!Number.isInteger(exaggerationIterations) || exaggerationIterations < 0) {
    bad(`exaggerationIterations must be a whole number >= 0, got ${exaggerationIterations}.`);
  }
  const lr = o.learningRate ?? 'auto';
  let learningRate: number;
  if (lr === 'auto') learningRate = Math.max(n / earlyExaggeration / 4, 50);
  else if (typeof lr === 'number' && lr > 0 && Number.isFinite(lr)) learningRate = lr;
  else learningRate = bad(`learningRate must be a positive number or 'auto', got ${String(lr)}.`);
  const init = o.init ?? 'random';
  if (init !== 'random' && init !== 'pca') bad(`init must be 'random' or 'pca', got ${String(init)}.`);
  return {
    perplexity: clampPerplexity(n, perplexity),
    iterations,
    theta,
    learningRate,
    earlyExaggeration,
    exaggerationIterations,
    seed: o.seed ?? 0,
    init,
    onProgress: o.onProgress,
  };
}

/**
 * A perplexity close to n - 1 cannot be matched (each Gaussian would need more
 * neighbours than there are points). Rather than fail on a small catalogue, use the
 * largest perplexity the neighbour lists can carry, as openTSNE does.
 */
function clampPerplexity(n: number, perplexity: number): number {
  return Math.max(Math.min(perplexity, (n - 1) / 3), 1);
}

function neighbourCount(n: number, perplexity: number): number {
  return Math.min(n - 1, Math.max(1, Math.floor(3 * perplexity)));
}

// ---------------------------------------------------------------------------------
// Affinities

interface Calibration {
  beta: number;
  /** The smallest distance in the row, subtracted before exponentiating. */
  shift: number;
  /** Sum of exp(-beta (D - shift)) over the row. */
  sum: number;
}

/**
 * Finds beta = 1 / (2 sigma^2) such that the entropy of p_j ~ exp(-beta D_j) over the
 * row equals log(perplexity) (bisection on beta, as in bhtsne), and writes the
 * normalised p into out[outOff ..].
 */
function calibrate(D: Float64Array, off: number, len: number, logPerp: number, out: Float64Array, outOff: number): Calibration {
  let shift = Infinity;
  for (let t = 0; t < len; t++) if (D[off + t] < shift) shift = D[off + t];
  let beta = 1;
  let lo = -Infinity;
  let hi = Infinity;
  let sum = 0;
  for (let iter = 0; iter < 200; iter++) {
    sum = 0;
    let wsum = 0;
    for (let t = 0; t < len; t++) {
      const x = D[off + t] - shift;
      const p = Math.exp(-beta * x);
      out[outOff + t] = p;
      sum += p;
      wsum += x * p;
    }
    const H = Math.log(sum) + (beta * wsum) / sum;
    const diff = H - logPerp;
    if (Math.abs(diff) < 1e-5) break;
    if (diff > 0) {
      lo = beta;
      beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
    } else {
      hi = beta;
      beta = lo === -Infinity ? beta / 2 : (beta + lo) / 2;
    }
  }
  for (let t = 0; t < len; t++) out[outOff + t] /= sum;
  return { beta, shift, sum };
}

/** The symmetric sparse P (summing to 1 over all ordered pairs) as the CSR rows of its
 *  upper triangle: each pair i < j once, so attraction visits every edge once. */
interface SparseP {
  rowPtr: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
}

function sparseAffinities(
  nbr: Int32Array, dist: Float64Array, n: number, k: number, perplexity: number,
  onProgress: Settings['onProgress'],
): SparseP {
  const logPerp = Math.log(perplexity);
  const cond = new Float64Array(n * k);
  const every = Math.max(1, Math.floor(n / 100));
  onProgress?.(0, n, 'affinities');
  for (let i = 0; i < n; i++) {
    calibrate(dist, i * k, k, logPerp, cond, i * k);
    if ((i + 1) % every === 0) onProgress?.(i + 1, n, 'affinities');
  }

  // (P + P^T) / 2n: every conditional p_{j|i} lands in row i and row j. Fill an
  // unsorted CSR with duplicates, then merge duplicates row by row with a marker array,
  // keeping the upper triangle.
  const counts = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    counts[i + 1] += k;
    for (let t = 0; t < k; t++) counts[nbr[i * k + t] + 1]++;
  }
  for (let i = 0; i < n; i++) counts[i + 1] += counts[i];
  const fill = counts.slice(0, n);
  const rawCols = new Int32Array(counts[n]);
  const rawVals = new Float64Array(counts[n]);
  const scale = 1 / (2 * n);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      const j = nbr[i * k + t];
      const v = cond[i * k + t] * scale;
      rawCols[fill[i]] = j;
      rawVals[fill[i]++] = v;
      rawCols[fill[j]] = i;
      rawVals[fill[j]++] = v;
    }
  }
  const rowPtr = new Int32Array(n + 1);
  const cols = new Int32Array(counts[n]);
  const vals = new Float64Array(counts[n]);
  const mark = new Int32Array(n).fill(-1);
  const slot = new Int32Array(n);
  let w = 0;
  for (let i = 0; i < n; i++) {
    rowPtr[i] = w;
    for (let e = counts[i]; e < counts[i + 1]; e++) {
      const j = rawCols[e];
      if (j < i) continue; // stored in row j, with the same merged value
      if (mark[j] === i) {
        vals[slot[j]] += rawVals[e];
      } else {
        mark[j] = i;
        slot[j] = w;
        cols[w] = j;
        vals[w++] = rawVals[e];
      }
    }
  }
  rowPtr[n] = w;
  onProgress?.(n, n, 'affinities');
  return { rowPtr, cols: cols.slice(0, w), vals: vals.slice(0, w) };
}

function sqDist(data: Float32Array, d: number, i: number, j: number): number {
  let s = 0;
  const a = i * d, b = j * d;
  for (let t = 0; t < d; t++) {
    const v = data[a + t] - data[b + t];
    s += v * v;
  }
  return s;
}

function squaredDistanceMatrix(data: Float32Array, n: number, d: number): Float64Array {
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = sqDist(data, d, i, j);
      D[i * n + j] = v;
      D[j * n + i] = v;
    }
  }
  return D;
}

function denseAffinities(D: Float64Array, n: number, perplexity: number, onProgress: Settings['onProgress']): Float64Array {
  const logPerp = Math.log(perplexity);
  const P = new Float64Array(n * n);
  const row = new Float64Array(n - 1);
  const prow = new Float64Array(n - 1);
  onProgress?.(0, n, 'affinities');
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let j = 0; j < n; j++) if (j !== i) row[t++] = D[i * n + j];
    calibrate(row, 0, n - 1, logPerp, prow, 0);
    t = 0;
    for (let j = 0; j < n; j++) if (j !== i) P[i * n + j] = prow[t++];
  }
  const scale = 1 / (2 * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = (P[i * n + j] + P[j * n + i]) * scale;
      P[i * n + j] = v;
      P[j * n + i] = v;
    }
  }
  onProgress?.(n, n, 'affinities');
  return P;
}

// ---------------------------------------------------------------------------------
// Optimisation

function initialLayout(data: Float32Array, n: number, d: number, s: Settings): Float64Array {
  const Y = new Float64Array(2 * n);
  if (s.init === 'pca' && d >= 2 && n >= 2) {
    const pca = fitPca(data, n, d, 2, { seed: s.seed, sampleRows: Math.min(n, 10000) });
    const proj = projectPca(pca, data, n);
    let ss = 0;
    for (let i = 0; i < n; i++) ss += proj[2 * i] * proj[2 * i];
    const sd = Math.sqrt(ss / n);
    const c = sd > 0 ? INIT_SD / sd : 0;
    for (let t = 0; t < 2 * n; t++) Y[t] = proj[t] * c;
    if (c > 0) return Y;
  }
  new Random(s.seed).fillNormal(Y, INIT_SD);
  return Y;
}

type Gradient = (y: Float64Array, exaggeration: number, out: Float64Array) => void;

/** Gradient descent with momentum and delta-bar-delta gains, as in bhtsne. */
function optimise(Y: Float64Array, n: number, s: Settings, gradient: Gradient): void {
  const len = 2 * n;
  const dY = new Float64Array(len);
  const uY = new Float64Array(len);
  const gains = new Float64Array(len).fill(1);
  const eta = s.learningRate;
  s.onProgress?.(0, s.iterations, 'optimise');
  for (let it = 0; it < s.iterations; it++) {
    const early = it < s.exaggerationIterations;
    const exaggeration = early ? s.earlyExaggeration : 1;
    const momentum = early ? MOMENTUM : FINAL_MOMENTUM;
    gradient(Y, exaggeration, dY);
    for (let t = 0; t < len; t++) {
      const g = dY[t];
      const u0 = uY[t];
      // Grow the step while the gradient keeps pointing the way we are already moving
      // (bhtsne's sign test, where sign(0) = 0 counts as a change).
      const sg = g > 0 ? 1 : g < 0 ? -1 : 0;
      const su = u0 > 0 ? 1 : u0 < 0 ? -1 : 0;
      let gain = sg !== su ? gains[t] + 0.2 : gains[t] * 0.8;
      if (gain < MIN_GAIN) gain = MIN_GAIN;
      gains[t] = gain;
      const u = momentum * u0 - eta * gain * g;
      uY[t] = u;
      Y[t] += u;
    }
    // Q depends only on differences, so recentring costs nothing and keeps the
    // coordinates (and the quadtree's bounding box) from drifting.
    let mx = 0, my = 0;
    for (let i = 0; i < n; i++) {
      mx += Y[2 * i];
      my += Y[2 * i + 1];
    }
    mx /= n;
    my /= n;
    for (let i = 0; i < n; i++) {
      Y[2 * i] -= mx;
      Y[2 * i + 1] -= my;
    }
    s.onProgress?.(it + 1, s.iterations, 'optimise');
  }
}

/** sum_j p_ij q_ij (y_i - y_j), q unnormalised, for every i. Each edge is computed once
 *  and applied to both ends (P is symmetric). */
function attractiveForces(P: SparseP, Y: Float64Array, n: number, out: Float64Array): void {
  const { rowPtr, cols, vals } = P;
  out.fill(0);
  for (let i = 0; i < n; i++) {
    const xi = Y[2 * i], yi = Y[2 * i + 1];
    let fx = 0, fy = 0;
    for (let e = rowPtr[i], end = rowPtr[i + 1]; e < end; e++) {
      const j = cols[e];
      const dx = xi - Y[2 * j], dy = yi - Y[2 * j + 1];
      const pq = vals[e] / (1 + dx * dx + dy * dy);
      const ax = pq * dx, ay = pq * dy;
      fx += ax;
      fy += ay;
      out[2 * j] -= ax;
      out[2 * j + 1] -= ay;
    }
    out[2 * i] += fx;
    out[2 * i + 1] += fy;
  }
}

/** Points per leaf. Interactions inside a leaf are computed exactly; bigger leaves make
 *  the tree shallower and the walks shorter. On a 31k-point layout 16 was about 10%
 *  faster than 8 and 2x faster than 1, at the same accuracy. */
const LEAF_SIZE = 16;
/** Depth at which splitting stops whatever the count: only (near-)duplicate points get
 *  this deep, and they would otherwise recurse without end. */
const MAX_DEPTH = 48;

/**
 * Flat Barnes-Hut quadtree over the current layout, rebuilt every iteration into the
 * same buffers (no allocation once they have grown).
 *
 * Nodes are numbered in pre-order and each stores `skip`, the number of the node that
 * follows its subtree. A traversal is then a forward walk, i = i + 1 to descend or
 * i = skip[i] to move past a summarised subtree, with no stack and mostly sequential
 * memory access. Points are kept in tree order (`perm`, `pos`) so each leaf's points
 * are contiguous, and repulsion is evaluated in that order so that consecutive walks
 * take nearly the same path.
 */
class QuadTree {
  /** Per node: centre of mass x, y, point count, squared cell side. */
  private geom = new Float64Array(0);
  /** Per node: the node after this subtree. */
  private skip = new Int32Array(0);
  /** Per node: first point (tree position) of a leaf, -1 for inner nodes. */
  private leafStart = new Int32Array(0);
  private nodeCount = 0;
  private readonly perm: Int32Array;
  private readonly pos: Float64Array;
  private readonly tmpPos: Float64Array;
  private readonly tmpPerm: Int32Array;

  constructor(private readonly n: number) {
    this.perm = new Int32Array(n);
    for (let i = 0; i < n; i++) this.perm[i] = i;
    this.pos = new Float64Array(2 * n);
    this.tmpPos = new Float64Array(2 * n);
    this.tmpPerm = new Int32Array(n);
    this.reserve(Math.ceil((2 * n) / LEAF_SIZE) + 16);
  }

  /**
   * Writes sum_{j != i} q_ij^2 (y_i - y_j) (q unnormalised) into out and returns
   * Z = sum_{i != j} q_ij.
   */
  repulsiveForces(Y: Float64Array, theta: number, out: Float64Array): number {
    this.build(Y);
    const { perm, pos, n, geom, skip, leafStart, nodeCount } = this;
    const theta2 = theta * theta;
    let sumQ = 0;
    for (let s = 0; s < n; s++) {
      const x = pos[2 * s], y = pos[2 * s + 1];
      let fx = 0, fy = 0, z = 0;
      let node = 0;
      while (node < nodeCount) {
        const g = 4 * node;
        const dx = x - geom[g], dy = y - geom[g + 1];
        const D = dx * dx + dy * dy;
        if (geom[g + 3] < theta2 * D) {
          // Far enough: the whole cell acts as one point of mass `count` at its centre.
          const q = 1 / (1 + D);
          const mq = geom[g + 2] * q;
          z += mq;
          fx += mq * q * dx;
          fy += mq * q * dy;
          node = skip[node];
          continue;
        }
        const first = leafStart[node];
        if (first < 0) {
          node++;
          continue;
        }
        for (let t = first, end = first + geom[g + 2]; t < end; t++) {
          if (t === s) continue;
          const ex = x - pos[2 * t], ey = y - pos[2 * t + 1];
          const q = 1 / (1 + ex * ex + ey * ey);
          z += q;
          fx += q * q * ex;
          fy += q * q * ey;
        }
        node = skip[node];
      }
      const i = perm[s];
      out[2 * i] = fx;
      out[2 * i + 1] = fy;
      sumQ += z;
    }
    return sumQ;
  }

  private reserve(nodes: number): void {
    if (this.skip.length >= nodes) return;
    const cap = Math.max(nodes, 2 * this.skip.length);
    const geom = new Float64Array(4 * cap);
    geom.set(this.geom);
    const skip = new Int32Array(cap);
    skip.set(this.skip);
    const leafStart = new Int32Array(cap);
    leafStart.set(this.leafStart);
    this.geom = geom;
    this.skip = skip;
    this.leafStart = leafStart;
  }

  private build(Y: Float64Array): void {
    const { n, perm, pos } = this;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = Y[2 * i], y = Y[2 * i + 1];
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
    }
    if (!Number.isFinite(minX + maxX + minY + maxY)) {
      throw new Error('t-SNE diverged (non-finite coordinates); lower the learning rate');
    }
    const side = Math.max(maxX - minX, maxY - minY, 1e-12) * (1 + 1e-9);
    // Start from last iteration's order: points move little, so partitions stay local.
    for (let s = 0; s < n; s++) {
      const i = perm[s];
      pos[2 * s] = Y[2 * i];
      pos[2 * s + 1] = Y[2 * i + 1];
    }
    this.nodeCount = 0;
    this.buildNode(0, n, minX, minY, side, 0);
  }

  /** Adds the subtree for the square [x0, x0 + side) x [y0, y0 + side) holding the
   *  points at tree positions [start, end), in pre-order. */
  private buildNode(start: number, end: number, x0: number, y0: number, side: number, depth: number): void {
    const { pos } = this;
    const node = this.nodeCount++;
    this.reserve(this.nodeCount);
    let cx = 0, cy = 0;
    for (let s = start; s < end; s++) {
      cx += pos[2 * s];
      cy += pos[2 * s + 1];
    }
    const count = end - start;
    const g = 4 * node;
    this.geom[g] = cx / count;
    this.geom[g + 1] = cy / count;
    this.geom[g + 2] = count;
    this.geom[g + 3] = side * side;
    if (count <= LEAF_SIZE || depth >= MAX_DEPTH) {
      this.leafStart[node] = start;
      this.skip[node] = this.nodeCount;
      return;
    }
    this.leafStart[node] = -1;
    const h = side / 2;
    const mx = x0 + h, my = y0 + h;
    // Counting sort of the points into quadrants 0..3 (bit 0: right half, bit 1: top).
    let c0 = 0, c1 = 0, c2 = 0;
    for (let s = start; s < end; s++) {
      const qd = (pos[2 * s] >= mx ? 1 : 0) + (pos[2 * s + 1] >= my ? 2 : 0);
      if (qd === 0) c0++;
      else if (qd === 1) c1++;
      else if (qd === 2) c2++;
    }
    const b1 = start + c0, b2 = b1 + c1, b3 = b2 + c2;
    let f0 = start, f1 = b1, f2 = b2, f3 = b3;
    const { perm, tmpPos, tmpPerm } = this;
    for (let s = start; s < end; s++) {
      const x = pos[2 * s], y = pos[2 * s + 1];
      const qd = (x >= mx ? 1 : 0) + (y >= my ? 2 : 0);
      const t = qd === 0 ? f0++ : qd === 1 ? f1++ : qd === 2 ? f2++ : f3++;
      tmpPos[2 * t] = x;
      tmpPos[2 * t + 1] = y;
      tmpPerm[t] = perm[s];
    }
    pos.set(tmpPos.subarray(2 * start, 2 * end), 2 * start);
    perm.set(tmpPerm.subarray(start, end), start);
    if (b1 > start) this.buildNode(start, b1, x0, y0, h, depth + 1);
    if (b2 > b1) this.buildNode(b1, b2, mx, y0, h, depth + 1);
    if (b3 > b2) this.buildNode(b2, b3, x0, my, h, depth + 1);
    if (end > b3) this.buildNode(b3, end, mx, my, h, depth + 1);
    this.skip[node] = this.nodeCount;
  }
}
