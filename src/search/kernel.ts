/**
 * Exact cosine top-k over a contiguous, row-normalised matrix. This is the product's
 * hot path, so it is written by hand:
 *  - one query: a dot product per row over a flat Float32Array (4-way unrolled), a
 *    bounded min-heap for the top k, an optional row mask for filters;
 *  - many queries (eval, recommend-all): a blocked matrix product handed to
 *    onnxruntime's GEMM (MatMul + TopK), which is far faster than any JS loop.
 */
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { dotAt } from '../math/linalg.js';
import { cpuSession, INT64, intAttribute, valueInfo } from '../model/onnx-graph.js';

export interface Hit { row: number; score: number }

/** L2-normalises each row in place; zero rows stay zero. */
export function normaliseRows(data: Float32Array, dim: number): Float32Array {
  const n = data.length / dim;
  for (let r = 0; r < n; r++) {
    const off = r * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) s += data[off + j] * data[off + j];
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let j = 0; j < dim; j++) data[off + j] *= inv;
    }
  }
  return data;
}

export interface TopKOptions {
  k: number;
  /** Minimum score to keep. */
  threshold?: number;
  /** Only rows with mask[row] = 1 are candidates. */
  mask?: Uint8Array;
  /** A row never returned (the query item itself). */
  exclude?: number;
}

/** Top-k rows of `matrix` (n x dim, normalised) by dot product with `query` (normalised). */
export function topK(matrix: Float32Array, dim: number, query: Float32Array, opts: TopKOptions): Hit[] {
  const n = matrix.length / dim;
  const select = new TopKSelector(n, opts);
  for (let r = 0; r < n; r++) {
    if (select.wants(r)) select.offer(r, dotAt(matrix, r * dim, query, dim));
  }
  return select.hits();
}

/** Top-k over scores computed elsewhere (one per row). */
export function topKFromScores(scores: Float32Array, opts: TopKOptions): Hit[] {
  const select = new TopKSelector(scores.length, opts);
  for (let r = 0; r < scores.length; r++) if (select.wants(r)) select.offer(r, scores[r]);
  return select.hits();
}

/**
 * Matrices at least this large (rows x dim) are scored by onnxruntime's GEMM, which runs
 * SIMD code on all cores: about 10 ms for 31k x 2048 where the JavaScript loop takes ~40+.
 * Below it, the call overhead is not worth it.
 */
const ORT_MIN_ELEMENTS = 4_000_000;

/** Same as topK, but large matrices are scored by onnxruntime. */
export async function topKAsync(matrix: Float32Array, dim: number, query: Float32Array, opts: TopKOptions): Promise<Hit[]> {
  if (matrix.length < ORT_MIN_ELEMENTS) return topK(matrix, dim, query, opts);
  const session = await gemmSession('scores');
  const out = await session.run({ queries: new ort.Tensor('float32', query, [1, dim]), matrix: matrixTensor(matrix, dim) });
  return topKFromScores(out.scores.data as Float32Array, opts);
}

/** A bounded min-heap that keeps the k best (row, score) pairs under the options. */
/** A bounded min-heap keeping the best k rows offered (mask, exclusion and threshold applied). */
export class TopKSelector {
  private readonly k: number;
  private readonly threshold: number;
  private readonly mask?: Uint8Array;
  private readonly exclude: number;
  private readonly rows: Int32Array;
  private readonly scores: Float32Array;
  private size = 0;

  constructor(n: number, opts: TopKOptions) {
    this.k = Math.max(0, Math.min(opts.k, n));
    this.threshold = opts.threshold ?? -Infinity;
    this.mask = opts.mask;
    this.exclude = opts.exclude ?? -1;
    this.rows = new Int32Array(this.k);
    this.scores = new Float32Array(this.k);
  }

  wants(row: number): boolean {
    return this.k > 0 && row !== this.exclude && (!this.mask || this.mask[row] === 1);
  }

  offer(row: number, score: number): void {
    if (score < this.threshold) return;
    if (this.size < this.k) {
      this.rows[this.size] = row;
      this.scores[this.size] = score;
      siftUp(this.rows, this.scores, this.size++);
    } else if (score > this.scores[0] || (score === this.scores[0] && row < this.rows[0])) {
      this.rows[0] = row;
      this.scores[0] = score;
      siftDown(this.rows, this.scores, this.size);
    }
  }

  hits(): Hit[] {
    const hits: Hit[] = [];
    for (let i = 0; i < this.size; i++) hits.push({ row: this.rows[i], score: this.scores[i] });
    return hits.sort((a, b) => b.score - a.score || a.row - b.row);
  }
}

/**
 * Heap order: the worst hit at the root. Equal scores (duplicate photos) rank the lower row
 * first, so which of them makes the top k does not depend on the order rows are offered in:
 * exact search (row order) and ANN re-ranking (candidate order) keep the same ones.
 */
function worse(rows: Int32Array, scores: Float32Array, a: number, b: number): boolean {
  return scores[a] < scores[b] || (scores[a] === scores[b] && rows[a] > rows[b]);
}

function siftUp(rows: Int32Array, scores: Float32Array, i: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!worse(rows, scores, i, p)) break;
    swap(rows, scores, i, p);
    i = p;
  }
}

function siftDown(rows: Int32Array, scores: Float32Array, size: number): void {
  let i = 0;
  for (;;) {
    const l = 2 * i + 1, r = l + 1;
    let m = i;
    if (l < size && worse(rows, scores, l, m)) m = l;
    if (r < size && worse(rows, scores, r, m)) m = r;
    if (m === i) return;
    swap(rows, scores, i, m);
    i = m;
  }
}

function swap(rows: Int32Array, scores: Float32Array, a: number, b: number): void {
  const tr = rows[a]; rows[a] = rows[b]; rows[b] = tr;
  const ts = scores[a]; scores[a] = scores[b]; scores[b] = ts;
}

/** Result of a batched search: `k` rows per query, best first. */
export interface BatchHits { k: number; rows: Int32Array; scores: Float32Array }

const sessions = new Map<'topk' | 'scores', Promise<ort.InferenceSession>>();

/**
 * Tiny ONNX graphs run by onnxruntime: 'scores' = Q · Mᵀ; 'topk' adds TopK along the
 * catalog axis, so only k scores per query come back.
 */
function gemmSession(kind: 'topk' | 'scores'): Promise<ort.InferenceSession> {
  let session = sessions.get(kind);
  if (!session) {
    const { onnx } = onnxProto;
    const gemm = onnx.NodeProto.create({ opType: 'Gemm', input: ['queries', 'matrix'], output: ['scores'], attribute: [intAttribute('transB', 1)] });
    const graph = kind === 'scores'
      ? onnx.GraphProto.create({
        name: 'cosine_scores',
        node: [gemm],
        input: [valueInfo('queries', ['q', 'd']), valueInfo('matrix', ['n', 'd'])],
        output: [valueInfo('scores', ['q', 'n'])],
      })
      : onnx.GraphProto.create({
        name: 'cosine_topk',
        node: [gemm, onnx.NodeProto.create({ opType: 'TopK', input: ['scores', 'k'], output: ['values', 'indices'], attribute: [intAttribute('axis', 1)] })],
        input: [valueInfo('queries', ['q', 'd']), valueInfo('matrix', ['n', 'd']), valueInfo('k', ['one'], INT64)],
        output: [valueInfo('values', ['q', 'k']), valueInfo('indices', ['q', 'k'], INT64)],
      });
    session = cpuSession(graph);
    sessions.set(kind, session);
  }
  return session;
}

/** One ort.Tensor per matrix: wrapping is cheap, but reuse keeps it allocation-free. */
const matrixTensors = new WeakMap<Float32Array, ort.Tensor>();
function matrixTensor(matrix: Float32Array, dim: number): ort.Tensor {
  let t = matrixTensors.get(matrix);
  if (!t) {
    t = new ort.Tensor('float32', matrix, [matrix.length / dim, dim]);
    matrixTensors.set(matrix, t);
  }
  return t;
}

/**
 * Top-k for many queries at once. `excludeSelf[q]` is a row to drop for query q (its own
 * row in leave-one-out), or -1. Queries go through in blocks so the score block stays small.
 */
export async function batchTopK(
  matrix: Float32Array, dim: number,
  queries: Float32Array, nq: number, k: number,
  options: { excludeSelf?: Int32Array; blockSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<BatchHits> {
  const n = matrix.length / dim;
  const kk = Math.min(k, Math.max(0, n - (options.excludeSelf ? 1 : 0)));
  const fetchK = Math.min(n, kk + (options.excludeSelf ? 1 : 0));
  const rows = new Int32Array(nq * kk).fill(-1);
  const scores = new Float32Array(nq * kk).fill(Number.NaN);
  if (!kk || !nq) return { k: kk, rows, scores };
  const session = await gemmSession('topk');
  const matrixInput = matrixTensor(matrix, dim);
  const kTensor = new ort.Tensor('int64', BigInt64Array.from([BigInt(fetchK)]), [1]);
  // ~64 MB of scores per block whatever the catalog size.
  const block = options.blockSize ?? Math.max(16, Math.min(1024, Math.floor(16_000_000 / n)));
  for (let start = 0; start < nq; start += block) {
    const count = Math.min(block, nq - start);
    const q = new ort.Tensor('float32', queries.subarray(start * dim, (start + count) * dim), [count, dim]);
    const out = await session.run({ queries: q, matrix: matrixInput, k: kTensor });
    const values = out.values.data as Float32Array;
    const indices = out.indices.data as BigInt64Array;
    for (let i = 0; i < count; i++) {
      const self = options.excludeSelf ? options.excludeSelf[start + i] : -1;
      let w = 0;
      for (let j = 0; j < fetchK && w < kk; j++) {
        const row = Number(indices[i * fetchK + j]);
        if (row === self) continue;
        rows[(start + i) * kk + w] = row;
        scores[(start + i) * kk + w] = values[i * fetchK + j];
        w++;
      }
    }
    options.onProgress?.(start + count, nq);
  }
  return { k: kk, rows, scores };
}
