/**
 * Retrieval quality of an embedding matrix against the catalog's own labels: every query
 * item asks for its k nearest neighbours (cosine) and we count how many share its value
 * of an attribute (articleType, gender, ...).
 *
 * Two steps, so that a sweep over k reuses one search:
 *  1. `findNeighbours`: one batched all-vs-all top-k (GEMM + TopK in onnxruntime over
 *     the contiguous matrix), either leave-one-out over the whole catalog (all-pairs.ts:
 *     the symmetric half of the product) or held-out queries (a stable hash split,
 *     eval/split.ts) against the other items only (batchTopK);
 *  2. `scoreNeighbours`: the metrics per attribute from the neighbour lists, for any k up
 *     to the searched one.
 *
 * Metric definitions (per attribute; q is a query, r_1..r_k its neighbours best first,
 * rel_i = 1 when r_i has the query's value):
 *  - precision@k: mean over queries of (Σ rel_i) / k.
 *  - precision@1: the same with k = 1.
 *  - mAP@k: mean over queries of AP@k = (1 / min(k, R_q)) · Σ_{i ≤ k} rel_i · precision@i,
 *    where R_q is the number of candidates (the query itself excluded) with the query's
 *    value. It is 1 when the first min(k, R_q) neighbours are all relevant. Queries with
 *    R_q = 0 have no relevant item to find: AP is undefined for them and they are left
 *    out of the mAP mean (they do count, as 0, in precision and kNN accuracy).
 *  - kNN accuracy: the majority value among the k neighbours predicts the query's value
 *    (neighbours with an empty value do not vote; a tie goes to the value with the
 *    higher summed similarity, then alphabetically); the share of queries predicted right.
 *  - macro-F1: the F1 of that classifier per class, averaged with equal weight over the
 *    classes that occur among the queries (a class never predicted has F1 = 0).
 * A query whose value is empty is not a query for that attribute (it stays a candidate).
 */
import { batchTopK } from '../../search/kernel.js';
import { leaveOneOutTopK } from './all-pairs.js';
import { LookalikeError } from '../../errors.js';
import { isHeldOut } from '../../catalog/split.js';

/** The k nearest candidates of each query row, in original matrix rows. */
export interface Neighbours {
  /** Matrix rows that are queries. */
  queryRows: Int32Array;
  /** k neighbours per query, best first (original matrix rows; -1 where fewer exist). */
  rows: Int32Array;
  scores: Float32Array;
  k: number;
  /** Whether each row may be returned as a neighbour (all rows in leave-one-out). */
  isCandidate: Uint8Array;
  /** 'leave-one-out' or 'held-out'. */
  protocol: 'leave-one-out' | 'held-out';
  /** Seconds spent in the batched search. */
  seconds: number;
}

export interface NeighbourOptions {
  /** Evaluate only a held-out share of the items (0 < fraction < 1) against the rest. */
  queries?: number;
  /** Leave-one-out for these rows only (a sample of queries, e.g. for quick sweeps): each
   *  queries all other rows. Ignored when `queries` is given. */
  queryRows?: Int32Array;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Batched nearest neighbours. `matrix` is n x dim with L2-normalised rows, so the dot
 * product is the cosine similarity.
 */
export async function findNeighbours(matrix: Float32Array, dim: number, ids: string[], k: number, options: NeighbourOptions = {}): Promise<Neighbours> {
  const n = ids.length;
  if (matrix.length !== n * dim) throw new Error(`matrix has ${matrix.length} values, expected ${n} x ${dim}`);
  const started = performance.now();
  const fraction = options.queries;
  if (fraction === undefined) {
    const self = options.queryRows ?? new Int32Array(n).map((_, i) => i);
    let queries = matrix;
    if (options.queryRows) {
      queries = new Float32Array(self.length * dim);
      self.forEach((r, i) => queries.set(matrix.subarray(r * dim, (r + 1) * dim), i * dim));
    }
    // Every item against every other: the symmetric product needs only half the work.
    const hits = options.queryRows
      ? await batchTopK(matrix, dim, queries, self.length, k, { excludeSelf: self, onProgress: options.onProgress })
      : await leaveOneOutTopK(matrix, dim, k, { onProgress: options.onProgress });
    return {
      queryRows: self, rows: hits.rows, scores: hits.scores, k: hits.k,
      isCandidate: new Uint8Array(n).fill(1), protocol: 'leave-one-out',
      seconds: (performance.now() - started) / 1000,
    };
  }
  if (!(fraction > 0 && fraction < 1)) {
    throw new LookalikeError('BAD_OPTION', { message: `the held-out query share must be between 0 and 1 (exclusive), not ${fraction}.` });
  }
  const queryList: number[] = [];
  const candidateList: number[] = [];
  ids.forEach((id, row) => (isHeldOut(id, fraction) ? queryList : candidateList).push(row));
  if (!queryList.length || !candidateList.length) {
    throw new LookalikeError('BAD_OPTION', { message: `a held-out share of ${fraction} leaves ${queryList.length} queries and ${candidateList.length} candidates among ${n} items: choose a share that leaves both non-empty.` });
  }
  const gather = (rows: number[]) => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => out.set(matrix.subarray(r * dim, (r + 1) * dim), i * dim));
    return out;
  };
  const candidates = gather(candidateList);
  const queries = gather(queryList);
  const hits = await batchTopK(candidates, dim, queries, queryList.length, k, { onProgress: options.onProgress });
  // Map candidate sub-matrix rows back to rows of the full matrix.
  const rows = hits.rows.map((r) => (r < 0 ? -1 : candidateList[r]));
  const isCandidate = new Uint8Array(n);
  for (const r of candidateList) isCandidate[r] = 1;
  return {
    queryRows: Int32Array.from(queryList), rows, scores: hits.scores, k: hits.k,
    isCandidate, protocol: 'held-out', seconds: (performance.now() - started) / 1000,
  };
}

export interface ClassRow {
  value: string;
  /** Queries with this value. */
  support: number;
  /** Candidates with this value. */
  candidates: number;
  precisionAt1: number;
  precisionAtK: number;
  /** Of the queries the kNN classifier labels with this value, the share that have it. */
  knnPrecision: number;
  /** Of the queries with this value, the share the kNN classifier labels right. */
  knnRecall: number;
  knnF1: number;
}

export interface Confusion {
  /** The most frequent values among the queries, then "(other)" when any prediction falls outside them. */
  labels: string[];
  /** counts[t][p]: queries whose value is labels[t] predicted as labels[p]. Rows cover the listed values only. */
  counts: number[][];
}

export interface AttributeResult {
  attribute: string;
  queries: number;
  classes: number;
  precisionAt1: number;
  precisionAtK: number;
  mapAtK: number;
  /** Queries that enter the mAP mean (those with at least one relevant candidate). */
  mapQueries: number;
  knnAccuracy: number;
  macroF1: number;
  perClass: ClassRow[];
  confusion: Confusion;
}

export interface EvalResult {
  k: number;
  protocol: 'leave-one-out' | 'held-out';
  /** Held-out share, when the protocol is held-out. */
  queryFraction?: number;
  items: number;
  queries: number;
  candidates: number;
  dim: number;
  attributes: AttributeResult[];
  /** Seconds: batched search, and the whole evaluation. */
  searchSeconds: number;
  seconds: number;
}

export interface ScoreOptions {
  /** Size of the confusion matrix (most frequent query values). Default 10. */
  confusionClasses?: number;
}

/** Metrics at `k` (<= neighbours.k) for one attribute, from precomputed neighbours. */
export function scoreAttribute(neighbours: Neighbours, attribute: string, labels: string[], k: number, options: ScoreOptions = {}): AttributeResult {
  if (k < 1 || k > neighbours.k) throw new Error(`k=${k} outside 1..${neighbours.k} (the neighbours searched)`);
  const K = neighbours.k;
  // Integer class codes: comparisons in the inner loops are integer compares.
  const codeOf = new Map<string, number>();
  const names: string[] = [];
  const codes = new Int32Array(labels.length);
  labels.forEach((v, row) => {
    if (!v) { codes[row] = -1; return; }
    let c = codeOf.get(v);
    if (c === undefined) { c = names.length; codeOf.set(v, c); names.push(v); }
    codes[row] = c;
  });
  const C = names.length;
  const candidateCount = new Int32Array(C);
  for (let r = 0; r < labels.length; r++) if (neighbours.isCandidate[r] && codes[r] >= 0) candidateCount[codes[r]]++;

  const support = new Int32Array(C);
  const sumP1 = new Float64Array(C);
  const sumPk = new Float64Array(C);
  const predictedCount = new Int32Array(C);
  const truePositive = new Int32Array(C);
  const predictions: Array<[number, number]> = [];
  let queries = 0, totalP1 = 0, totalPk = 0, totalAp = 0, apQueries = 0, correct = 0;
  const votes = new Map<number, { count: number; score: number }>();

  for (let qi = 0; qi < neighbours.queryRows.length; qi++) {
    const qRow = neighbours.queryRows[qi];
    const truth = codes[qRow];
    if (truth < 0) continue;
    queries++;
    support[truth]++;
    // Relevant candidates besides the query itself.
    const relevantTotal = candidateCount[truth] - (neighbours.isCandidate[qRow] ? 1 : 0);
    let hits = 0, ap = 0;
    votes.clear();
    for (let j = 0; j < k; j++) {
      const row = neighbours.rows[qi * K + j];
      if (row < 0) break;
      const c = codes[row];
      if (c === truth) {
        hits++;
        ap += hits / (j + 1);
      }
      if (c >= 0) {
        const v = votes.get(c);
        if (v) { v.count++; v.score += neighbours.scores[qi * K + j]; } else votes.set(c, { count: 1, score: neighbours.scores[qi * K + j] });
      }
    }
    const first = codes[neighbours.rows[qi * K]] === truth && neighbours.rows[qi * K] >= 0 ? 1 : 0;
    totalP1 += first;
    sumP1[truth] += first;
    totalPk += hits / k;
    sumPk[truth] += hits / k;
    if (relevantTotal > 0) {
      totalAp += ap / Math.min(k, relevantTotal);
      apQueries++;
    }
    let best = -1, bestCount = 0, bestScore = -Infinity;
    for (const [c, v] of votes) {
      if (v.count > bestCount || (v.count === bestCount && (v.score > bestScore || (v.score === bestScore && names[c] < names[best])))) {
        best = c; bestCount = v.count; bestScore = v.score;
      }
    }
    if (best >= 0) predictedCount[best]++;
    if (best === truth) { correct++; truePositive[truth]++; }
    predictions.push([truth, best]);
  }

  const perClass: ClassRow[] = [];
  let f1Sum = 0, f1Classes = 0;
  for (let c = 0; c < C; c++) {
    if (!support[c]) continue;
    const precision = predictedCount[c] ? truePositive[c] / predictedCount[c] : 0;
    const recall = truePositive[c] / support[c];
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    f1Sum += f1;
    f1Classes++;
    perClass.push({
      value: names[c], support: support[c], candidates: candidateCount[c],
      precisionAt1: sumP1[c] / support[c], precisionAtK: sumPk[c] / support[c],
      knnPrecision: precision, knnRecall: recall, knnF1: f1,
    });
  }
  perClass.sort((a, b) => b.support - a.support || a.value.localeCompare(b.value));

  const top = perClass.slice(0, options.confusionClasses ?? 10).map((r) => codeOf.get(r.value)!);
  const slot = new Map(top.map((c, i) => [c, i]));
  const hasOther = predictions.some(([t, p]) => slot.has(t) && !slot.has(p));
  const width = top.length + (hasOther ? 1 : 0);
  const counts = top.map(() => new Array<number>(width).fill(0));
  for (const [t, p] of predictions) {
    const ti = slot.get(t);
    if (ti === undefined) continue;
    counts[ti][slot.get(p) ?? top.length]++;
  }

  return {
    attribute,
    queries,
    classes: f1Classes,
    precisionAt1: queries ? totalP1 / queries : 0,
    precisionAtK: queries ? totalPk / queries : 0,
    mapAtK: apQueries ? totalAp / apQueries : 0,
    mapQueries: apQueries,
    knnAccuracy: queries ? correct / queries : 0,
    macroF1: f1Classes ? f1Sum / f1Classes : 0,
    perClass,
    confusion: { labels: [...top.map((c) => names[c]), ...(hasOther ? ['(other)'] : [])], counts },
  };
}

export interface EvaluateInput extends NeighbourOptions, ScoreOptions {
  /** n x dim, rows L2-normalised (cosine = dot product). */
  matrix: Float32Array;
  dim: number;
  ids: string[];
  /** Per attribute, the value of each matrix row ('' = unknown). */
  labels: Record<string, string[]>;
  k: number;
}

export async function evaluate(input: EvaluateInput): Promise<EvalResult> {
  const started = performance.now();
  const n = input.ids.length;
  for (const [attr, values] of Object.entries(input.labels)) {
    if (values.length !== n) throw new Error(`labels for ${attr} have ${values.length} rows, expected ${n}`);
  }
  const neighbours = await findNeighbours(input.matrix, input.dim, input.ids, input.k, input);
  return summarise(neighbours, input, neighbours.k, started);
}

/** The EvalResult at `k` from neighbours searched once (k <= neighbours.k). */
export function summarise(neighbours: Neighbours, input: Pick<EvaluateInput, 'ids' | 'labels' | 'dim' | 'queries' | 'confusionClasses'>, k: number, started = performance.now()): EvalResult {
  const attributes = Object.entries(input.labels).map(([attr, values]) => scoreAttribute(neighbours, attr, values, Math.min(k, neighbours.k), input));
  let candidates = 0;
  for (const c of neighbours.isCandidate) candidates += c;
  return {
    k: Math.min(k, neighbours.k),
    protocol: neighbours.protocol,
    queryFraction: neighbours.protocol === 'held-out' ? input.queries : undefined,
    items: input.ids.length,
    queries: neighbours.queryRows.length,
    candidates,
    dim: input.dim,
    attributes,
    searchSeconds: neighbours.seconds,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Similarity scores of the top-k neighbours, split by whether the neighbour shares the
 * query's value of an attribute: what a similarity threshold has to separate.
 * Queries with an empty value, and neighbours with an empty value, are left out.
 */
export function neighbourScores(neighbours: Neighbours, labels: string[], k = neighbours.k): { same: Float32Array; different: Float32Array } {
  const K = neighbours.k;
  const kk = Math.min(k, K);
  const same: number[] = [];
  const different: number[] = [];
  for (let qi = 0; qi < neighbours.queryRows.length; qi++) {
    const truth = labels[neighbours.queryRows[qi]];
    if (!truth) continue;
    for (let j = 0; j < kk; j++) {
      const row = neighbours.rows[qi * K + j];
      if (row < 0 || !labels[row]) continue;
      (labels[row] === truth ? same : different).push(neighbours.scores[qi * K + j]);
    }
  }
  return { same: Float32Array.from(same), different: Float32Array.from(different) };
}

export interface ThresholdPoint { threshold: number; precision: number; kept: number }

/**
 * Precision of the neighbours kept at each threshold (score >= t), and the lowest
 * threshold whose kept neighbours are still at least `target` precise: lowering the
 * threshold further would let the share of same-class neighbours drop below the target.
 * `suggested` is undefined when even the single best-scoring neighbours miss the target.
 */
export function suggestThreshold(same: ArrayLike<number>, different: ArrayLike<number>, target: number, points = 50): { suggested?: number; precisionAtSuggested?: number; keptAtSuggested?: number; curve: ThresholdPoint[] } {
  const all: Array<[number, number]> = [];
  for (let i = 0; i < same.length; i++) all.push([same[i], 1]);
  for (let i = 0; i < different.length; i++) all.push([different[i], 0]);
  all.sort((a, b) => b[0] - a[0]);
  const total = all.length;
  let hits = 0;
  let suggested: number | undefined, precisionAtSuggested: number | undefined, keptAtSuggested: number | undefined;
  const curve: ThresholdPoint[] = [];
  const every = Math.max(1, Math.floor(total / points));
  for (let i = 0; i < total; i++) {
    hits += all[i][1];
    // Only cut between distinct scores: equal scores are kept or dropped together.
    if (i + 1 < total && all[i + 1][0] === all[i][0]) continue;
    const precision = hits / (i + 1);
    if (precision >= target) {
      suggested = all[i][0];
      precisionAtSuggested = precision;
      keptAtSuggested = (i + 1) / total;
    }
    if (i % every === 0 || i === total - 1) curve.push({ threshold: all[i][0], precision, kept: (i + 1) / total });
  }
  return { suggested, precisionAtSuggested, keptAtSuggested, curve };
}
