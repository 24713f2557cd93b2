/**
 * Approximate search: a space's HNSW graph (search/ann.ts) proposes candidates, which are
 * re-ranked exactly, so the scores shown are true cosines. Its lifecycle lives here too:
 * the index of each space opened from its files when they are current, else brought up
 * to date (or built), measured against exact search and saved beside the index.
 */
import path from 'node:path';
import { dotAt } from '../math/linalg.js';
import { AnnIndex, type AnnMeta, type SyncReport } from './ann.js';
import { batchTopK, topK, TopKSelector, type Hit, type TopKOptions } from './kernel.js';
import type { ItemTable } from './items.js';
import type { EmbeddingSpace } from './space.js';
import type { SpaceVectors } from './vectors.js';
import { rowOptions, type SearchRequest, type Searcher } from './searcher.js';

/**
 * A filtered search whose filters leave at most this many rows scores them all exactly:
 * a dot product per row costs less than walking the graph for the few that pass
 * (measured: 3,000 rows x 320-d ~0.4 ms in JS), and the answer is then exact.
 */
export const FILTERED_EXACT_MAX = 3_000;

/** Candidates fetched from the graph per result, before exact re-ranking. */
const CANDIDATES_PER_RESULT = 4;
const MIN_CANDIDATES = 64;
/**
 * Under a filter the graph's neighbours thin out: candidates are fetched in proportion to
 * the share of rows the filter leaves, times this. That is enough when the filter is blind
 * to looks; when it is not (gender=Women for a man's shirt), the filtered top-k lies deep in
 * the graph's order, and the search widens (FILTER_TRUSTED_SHARE).
 */
const FILTER_DEPTH = 2;
/**
 * A filtered search trusts its answer when every hit was found in this leading share of the
 * graph's candidates: the beam search orders its first candidates well and its last ones
 * poorly. Measured on the dev catalog: a man's item under gender=Women had its 6th women's
 * neighbour at place 773 of 5,000 candidates, and missing from 1,200.
 */
const FILTER_TRUSTED_SHARE = 0.25;

type Progress = (done: number, total: number) => void;

/** What an ANN search needs of a space (AnnIndexes.view). */
interface AnnView {
  /** Candidate rows for a query, best first by the graph's (approximate) order. */
  candidates(query: Float32Array, count: number): Int32Array;
  /** The exact score of a row for a query. */
  scorer(query: Float32Array): (row: number) => number;
}

/** Several candidate lists as one, taking from each in turn, each row once. */
function interleave(lists: Int32Array[]): Int32Array {
  if (lists.length === 1) return lists[0];
  const seen = new Set<number>();
  const out: number[] = [];
  const longest = Math.max(...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) {
    for (const list of lists) {
      if (i < list.length && !seen.has(list[i])) { seen.add(list[i]); out.push(list[i]); }
    }
  }
  return Int32Array.from(out);
}

/**
 * Exact top-k among some rows (a graph's candidates, or a filter's few rows). `lowest` is
 * the lowest score among the eligible rows scored, so a caller can tell whether the
 * candidates reached below its threshold; `deepest`, the largest place in `rows` of a hit.
 */
function scoreRows(score: (row: number) => number, n: number, rows: Int32Array, opts: TopKOptions): { hits: Hit[]; lowest: number; deepest: number } {
  const select = new TopKSelector(n, opts);
  let lowest = Infinity;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!select.wants(r)) continue;
    const s = score(r);
    if (s < lowest) lowest = s;
    select.offer(r, s);
  }
  const hits = select.hits();
  let deepest = -1;
  // Only filtered searches look at it (FILTER_TRUSTED_SHARE): no map for the others.
  if (hits.length && opts.mask) {
    const place = new Map<number, number>();
    rows.forEach((r, i) => { if (!place.has(r)) place.set(r, i); });
    for (const h of hits) deepest = Math.max(deepest, place.get(h.row) ?? -1);
  }
  return { hits, lowest, deepest };
}

/** The rows a mask lets through. */
function maskRows(mask: Uint8Array): Int32Array {
  const rows: number[] = [];
  for (let r = 0; r < mask.length; r++) if (mask[r]) rows.push(r);
  return Int32Array.from(rows);
}

/**
 * The best rows through a view. Filters and thresholds keep their meaning: a filter leaving
 * few rows is answered exactly; otherwise more candidates are fetched in proportion to the
 * rows it leaves, and when they still hold fewer results than exist (or all of them pass
 * the threshold), the search widens and finally falls back to exact.
 */
function viewTopK(view: AnnView, vectors: SpaceVectors, space: EmbeddingSpace, n: number, query: Float32Array, opts: TopKOptions, eligibleRows?: number, candidates = 0): Hit[] {
  let eligible = n;
  if (opts.mask) {
    eligible = eligibleRows ?? opts.mask.reduce((s, v) => s + v, 0);
    if (eligible <= FILTERED_EXACT_MAX) return scoreRows(view.scorer(query), n, maskRows(opts.mask), opts).hits;
  }
  const excluded = opts.exclude !== undefined && (!opts.mask || opts.mask[opts.exclude] === 1) ? 1 : 0;
  const want = Math.min(opts.k, eligible - excluded);
  const filterFactor = eligible < n ? FILTER_DEPTH * (n / Math.max(1, eligible)) : 1;
  let count = Math.ceil(Math.max(MIN_CANDIDATES, candidates, opts.k * CANDIDATES_PER_RESULT + excluded) * filterFactor);
  const score = view.scorer(query);
  for (;;) {
    // So many candidates that scoring every row costs less (and is exact).
    if (count >= n / 2) { const { data, dim } = vectors.matrix(space); return topK(data, dim, query, opts); }
    const found = view.candidates(query, count);
    const { hits, lowest, deepest } = scoreRows(score, n, found, opts);
    const trusted = !opts.mask || deepest < FILTER_TRUSTED_SHARE * found.length;
    if (trusted && (hits.length >= want || (opts.threshold !== undefined && lowest < opts.threshold))) return hits;
    count *= 4;
  }
}

/** Where the ANN files live and whether they are written. */
export interface AnnFiles {
  /** Beside index.sqlite; without it each index is built in memory on first use. */
  annDir?: string;
  /** False: never written (a read-only open of a folder another process owns). */
  persist?: boolean;
}

/** The ANN indexes of one engine's spaces: opened, built, measured, saved and closed here. */
export class AnnIndexes {
  private readonly open = new Map<string, Promise<AnnIndex>>();
  /** What the last ANN build or update did (bench, info). */
  lastSync?: SyncReport;

  constructor(private readonly table: ItemTable, private readonly vectors: SpaceVectors, private readonly generation: number, private readonly files: AnnFiles = {}) {}

  /**
   * The ANN index of a space: loaded from its files when they reflect the store's current
   * generation, else brought up to date incrementally (or built), measured and saved.
   */
  index(space: EmbeddingSpace, onProgress?: Progress): Promise<AnnIndex> {
    let ann = this.open.get(space.id);
    if (!ann) {
      ann = this.openIndex(space, onProgress);
      this.open.set(space.id, ann);
      ann.catch(() => this.open.delete(space.id));
    }
    return ann;
  }

  private async openIndex(space: EmbeddingSpace, onProgress?: Progress): Promise<AnnIndex> {
    const base = this.baseOf(space);
    const generation = this.generation;
    const ids = this.table.ids();
    const loaded = base ? AnnIndex.load(base, space.id, space.dim) : undefined;
    if (loaded && loaded.meta.generation === generation && loaded.size === ids.length) {
      loaded.bindRows(ids);
      return loaded;
    }
    const ann = loaded ?? AnnIndex.create(space.id, space.dim);
    const report = ann.sync(ids, this.vectors.matrix(space).data, generation, onProgress);
    this.lastSync = report;
    if (report.added || report.removed || report.replaced || ann.meta.recallAt10 === undefined) {
      const { recall, queries } = await this.measureRecall(space, ann);
      ann.meta.recallAt10 = recall;
      ann.meta.recallQueries = queries;
    }
    if (base && this.files.persist !== false) {
      try { ann.save(base, this.vectors.matrix(space).data); } catch { /* read-only index folder: rebuilt in memory next time */ }
    }
    return ann;
  }

  /** Searches of `space` go through `ann`, built elsewhere over these rows (bench). */
  adopt(space: EmbeddingSpace, ann: AnnIndex): void {
    this.open.set(space.id, Promise.resolve(ann));
  }

  /** The saved ANN index's description for a space, without loading or building it. */
  status(space: EmbeddingSpace): { file?: string; meta?: AnnMeta; current: boolean } {
    const base = this.baseOf(space);
    const meta = base ? AnnIndex.readMeta(base) : undefined;
    return { file: base && `${base}.usearch`, meta, current: !!meta && meta.generation === this.generation };
  }

  private baseOf(space: EmbeddingSpace): string | undefined {
    const dir = this.files.annDir;
    return dir ? path.join(dir, `ann-${space.id.replace(/[^A-Za-z0-9_.-]+/g, '_')}`) : undefined;
  }

  /** Recall@10 of re-ranked ANN search against exact search, over up to 200 catalog items. */
  async measureRecall(space: EmbeddingSpace, ann: AnnIndex, k = 10, queryCount = 200): Promise<{ recall: number; queries: number }> {
    const { data, dim } = this.vectors.matrix(space);
    const n = this.table.size;
    const kk = Math.min(k, n - 1);
    const nq = Math.min(queryCount, n);
    if (kk < 1) return { recall: 1, queries: 0 };
    const rows = Array.from({ length: nq }, (_, i) => Math.floor((i * n) / nq));
    const queries = new Float32Array(nq * dim);
    rows.forEach((r, i) => queries.set(data.subarray(r * dim, (r + 1) * dim), i * dim));
    const exact = await batchTopK(data, dim, queries, nq, kk, { excludeSelf: Int32Array.from(rows) });
    let found = 0;
    for (let i = 0; i < nq; i++) {
      const truth = new Set(exact.rows.subarray(i * kk, (i + 1) * kk));
      const hits = viewTopK(this.plainView(space, ann), this.vectors, space, n, queries.subarray(i * dim, (i + 1) * dim), { k: kk, exclude: rows[i] });
      for (const h of hits) if (truth.has(h.row)) found++;
    }
    return { recall: found / (nq * kk), queries: nq };
  }

  /**
   * How ANN searches see a space. A plain space: its graph's candidates, scored from its
   * matrix when in memory, else from its rows file. A blended space has no graph of its own:
   * the candidates of each part's graph (each part's query is its unit sub-vector) are
   * merged and scored as the blend scores, the parts' cosines weighted. Measured on shopper
   * photos (docs/ann.md): a graph over the 2,368-d blend lost the very product for 4% of photos
   * with other products beside it, where the backbone's own graph lost none; and the parts'
   * graphs serve their own spaces anyway, so the blend costs no memory of its own.
   */
  async view(space: EmbeddingSpace): Promise<AnnView> {
    if (space.parts) {
      const parts = space.parts;
      const views = await Promise.all(parts.map((p) => this.view(p.space)));
      const split = (query: Float32Array) => {
        let offset = 0;
        return parts.map((p) => {
          const scale = 1 / Math.sqrt(p.weight);
          const sub = Float32Array.from(query.subarray(offset, offset + p.space.dim), (x) => x * scale);
          offset += p.space.dim;
          return sub;
        });
      };
      return {
        candidates: (query, count) => {
          const subs = split(query);
          return interleave(views.map((v, i) => v.candidates(subs[i], count)));
        },
        scorer: (query) => {
          const scorers = split(query).map((q, i) => views[i].scorer(q));
          return (row) => {
            let score = 0;
            for (let i = 0; i < scorers.length; i++) score += parts[i].weight * scorers[i](row);
            return score;
          };
        },
      };
    }
    return this.plainView(space, await this.index(space));
  }

  private plainView(space: EmbeddingSpace, ann: AnnIndex): AnnView {
    const dim = space.dim;
    return {
      candidates: (query, count) => ann.searchRows(query, count),
      scorer: (query) => {
        const inMemory = this.vectors.held(space);
        if (inMemory || !ann.hasRowsFile) {
          const data = (inMemory ?? this.vectors.matrix(space)).data;
          return (row) => dotAt(data, row * dim, query, dim);
        }
        const buffer = new Float32Array(dim);
        return (row) => dotAt(ann.readRow(row, buffer), 0, query, dim);
      },
    };
  }

  /**
   * A row's vector in a space without computing the space's matrix when the index's rows
   * file is current (a server that never holds the float32 matrix). A blend (the photo
   * space) is put together from its parts' vectors, each scaled as blendedSpace does: its
   * own matrix (n x 2,368 floats for a head's photo space) is never built for ANN search.
   */
  async vectorOf(space: EmbeddingSpace, row: number): Promise<Float32Array> {
    if (!this.vectors.held(space) && space.parts) {
      const out = new Float32Array(space.dim);
      let at = 0;
      for (const part of space.parts) {
        const v = await this.vectorOf(part.space, row);
        const w = Math.sqrt(part.weight);
        for (let i = 0; i < v.length; i++) out[at + i] = w * v[i];
        at += part.space.dim;
      }
      return out;
    }
    if (!this.vectors.held(space) && !space.parts) {
      const ann = await this.index(space);
      if (ann.hasRowsFile && !this.vectors.held(space)) return ann.readRow(row, new Float32Array(space.dim));
    }
    return this.vectors.row(space, row);
  }

  /** Closes the indexes' rows files, now (close) or in the background (forget). */
  async close(): Promise<void> {
    for (const ann of this.open.values()) (await ann.catch(() => undefined))?.close();
    this.open.clear();
  }

  forget(): void {
    for (const ann of this.open.values()) ann.then((a) => a.close(), () => {});
    this.open.clear();
  }
}

/** ANN search in one space, through the engine's AnnIndexes. */
export class AnnSearcher implements Searcher {
  readonly method = 'ann';

  constructor(private readonly space: EmbeddingSpace, private readonly table: ItemTable, private readonly vectors: SpaceVectors, private readonly indexes: AnnIndexes) {}

  /** Loads (or builds) what searches go through: the space's index, or a blend's parts' indexes. */
  async prepare(): Promise<void> {
    await this.indexes.view(this.space);
  }

  async search(query: Float32Array, request: SearchRequest): Promise<Hit[]> {
    const view = await this.indexes.view(this.space);
    return viewTopK(view, this.vectors, this.space, this.table.size, query, rowOptions(this.table, request), undefined, request.candidates);
  }

  /**
   * Top-k of catalog rows, each query row excluding itself, among the rows of `mask` (all
   * without one): leave-one-out and held-out evaluation with ANN.
   */
  async topKOfRows(queryRows: Int32Array, k: number, mask?: Uint8Array, onProgress?: Progress): Promise<{ k: number; rows: Int32Array; scores: Float32Array }> {
    const { data, dim } = this.vectors.matrix(this.space);
    const view = await this.indexes.view(this.space);
    const n = this.table.size;
    const eligible = mask ? mask.reduce((s, v) => s + v, 0) : n;
    const kk = Math.min(k, eligible - (mask ? 0 : 1));
    const rows = new Int32Array(queryRows.length * kk).fill(-1);
    const scores = new Float32Array(queryRows.length * kk).fill(Number.NaN);
    queryRows.forEach((r, q) => {
      const hits = viewTopK(view, this.vectors, this.space, n, data.subarray(r * dim, (r + 1) * dim), { k: kk, exclude: r, mask }, eligible);
      hits.forEach((h, j) => { rows[q * kk + j] = h.row; scores[q * kk + j] = h.score; });
      if (onProgress && (q % 1024 === 1023 || q === queryRows.length - 1)) onProgress(q + 1, queryRows.length);
    });
    return { k: kk, rows, scores };
  }

  vectorOf(row: number): Promise<Float32Array> {
    return this.indexes.vectorOf(this.space, row);
  }
}
