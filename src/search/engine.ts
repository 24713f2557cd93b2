/**
 * The in-memory search engine over one index: items with their metadata, and per
 * embedding space a contiguous normalised matrix of the embedded items.
 */
import path from 'node:path';
import type { Store, StoredItem, VectorKind, VectorMatrix } from '../store/types.js';
import { DEFAULT_K } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { checkK, checkThreshold } from '../validate.js';
import { batchTopK, topK, topKAsync, topKFromScores, TopKSelector, type Hit, type TopKOptions } from './kernel.js';
import { filterMask, type Filters } from './filters.js';
import type { EmbeddingSpace, RawVectors } from './space.js';
import { AnnIndex, type AnnMeta, type SyncReport } from './ann.js';
import { dotAt } from '../math/linalg.js';
import { BOOST_CANDIDATES_PER_RESULT, matchText, TEXT_BOOST, Vocabulary, type TextMode } from './text.js';
import { exampleScores, type RecommendStrategy } from './recommend.js';
import { ProductPhotos, productMetadata, type MatchedPhoto } from './products.js';

/** What an ANN search needs of a space (SearchEngine.annView). */
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

/** How a search is answered: exact (every row scored) or through the ANN index. */
/** `db`: answered by the store itself (PostgreSQL + pgvector), see searchDb. */
export type SearchMethod = 'exact' | 'ann' | 'db';
export type SearchSetting = SearchMethod | 'auto';
export const SEARCH_SETTINGS: readonly SearchSetting[] = ['auto', 'exact', 'ann', 'db'];

/**
 * `auto` searches through the ANN index from this many items. Measured on this project's
 * 2-core machine under load (docs/ann.md): exact search costs 0.6 ms at 2,000 x 320-d, 6-10 ms
 * at 5,000 and 11-25 ms at 10,000 (320-d head / 2048-d backbone), where ANN answers in
 * ~0.6 ms; from 10,000 items the one-off build (a few seconds, saved beside the index)
 * pays for itself, below it exact search is fast enough and needs no extra file.
 */
export const ANN_MIN_ITEMS = 10_000;

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

export interface SearchOptions {
  k?: number;
  threshold?: number;
  filters?: Filters;
  /** exact, ann, or auto (the index's setting, else ANN from ANN_MIN_ITEMS items). */
  search?: SearchSetting;
  /**
   * The least number of the graph's candidates re-ranked (ANN only). Photos ask for more
   * than catalog items do (PHOTO_ANN_CANDIDATES): a shopper's photo lies far from every
   * catalog vector, where the graph's order is poorer.
   */
  candidates?: number;
}

/**
 * Candidates re-ranked for a photo query. Measured with `lookalike robustness --search ann`
 * (600 shopper photos of the dev catalog, head default mode): with 64 candidates the very
 * product's recall@10 fell from 0.938 (exact) to 0.918, and with other products beside it
 * from 0.820 to 0.750; see docs/ann.md for the figures at this depth.
 */
export const PHOTO_ANN_CANDIDATES = 512;

export interface SearchHit {
  id: string;
  rank: number;
  score: number;
  metadata: Record<string, string>;
  image: string;
  /** With dedupe: the near-duplicates of this product that the list left out, best first. */
  duplicates?: string[];
  /** Grouped by style: the other variants of this product's style, best first. */
  variants?: Array<{ id: string; score: number; metadata: Record<string, string> }>;
  /** A product with several photos (search/products.ts): the one that matched. */
  photo?: MatchedPhoto;
}

export interface SpaceMatrix { space: EmbeddingSpace; data: Float32Array; dim: number }

/** A text's matches among the engine's rows (SearchEngine.textHits). */
export interface TextHits {
  /** The words searched (after correction). */
  terms: string[];
  /** The words as searched, when some were corrected. */
  corrected?: string;
  /** Per row: 0 no match, else relevance relative to the best match (1). */
  relevance: Float32Array;
  /** 1 for the rows that match. */
  mask: Uint8Array;
  /** Matching rows, most relevant first. */
  rows: Int32Array;
}

/** What a search may add to a vector: rows it must leave out, and words. */
export interface FindOptions extends SearchOptions {
  /** Items never returned (the examples of a recommendation). */
  excludeIds?: readonly string[];
  text?: TextHits;
  /** filter (default): only products matching the words; boost: matching products rank higher. */
  textMode?: TextMode;
}

export class SearchEngine {
  /** Embedded items, in matrix row order. */
  readonly items: readonly StoredItem[];
  readonly columns: string[];
  private readonly rowById = new Map<string, number>();
  private readonly metadata: Array<Record<string, string>>;
  private raw?: RawVectors;
  private readonly spaces = new Map<string, SpaceMatrix>();
  private readonly anns = new Map<string, Promise<AnnIndex>>();
  /** The store's data generation this engine's items and rows come from. */
  readonly generation: number;

  /**
   * `annDir`: where ANN index files live (beside index.sqlite); without it the ANN index is
   * built in memory on first use. `search`: the index's search setting.
   */
  constructor(private readonly store: Store, columns: string[], private readonly annOptions: { annDir?: string; persist?: boolean; search?: SearchSetting } = {}) {
    this.generation = store.generation();
    const all = new Map(store.listItems().map((i) => [i.id, i]));
    const { ids } = store.loadMatrix('colour'); // smallest matrix: gives the row order cheaply
    this.items = ids.map((id) => all.get(id)!).filter(Boolean);
    this.items.forEach((item, row) => this.rowById.set(item.id, row));
    this.columns = columns;
    this.metadata = this.items.map((i) => i.metadata);
  }

  get size(): number {
    return this.items.length;
  }

  private productPhotos?: ProductPhotos;

  /** Products and their photos' rows (search/products.ts): a row is a photo, a product may have several. */
  get photos(): ProductPhotos {
    return (this.productPhotos ??= new ProductPhotos(this.items));
  }

  /** A filter mask narrowed to one row per product (its first photo), when products have several. */
  private productMask(mask: Uint8Array | undefined): Uint8Array | undefined {
    if (!this.photos.multi) return mask;
    const lead = this.photos.leadRows;
    return mask ? mask.map((m, r) => m & lead[r]) : lead;
  }

  rowOf(id: string): number {
    const row = this.rowById.get(id);
    if (row === undefined) throw new LookalikeError('ITEM_NOT_FOUND', { id });
    return row;
  }

  has(id: string): boolean {
    return this.rowById.has(id);
  }

  /**
   * Raw stored vectors of every embedded item. Each kind loads on first use only (256 MB
   * per pooling for the dev catalog), so a server searching max-pooled vectors never holds
   * the average-pooled ones.
   */
  rawVectors(): RawVectors {
    if (!this.raw) {
      const store = this.store;
      const loaded: Partial<Record<VectorKind, VectorMatrix>> = {};
      const load = (kind: VectorKind) => (loaded[kind] ??= store.loadMatrix(kind));
      const n = this.items.length;
      this.raw = {
        n,
        get max() { return load('max').data; },
        get avg() { return load('avg').data; },
        get colour() { return load('colour').data; },
        get dim() { return load('max').dim; },
        get colourDim() { return load('colour').dim; },
      };
    }
    return this.raw;
  }

  /** Loads these kinds of raw vectors now rather than on first use. */
  pin(kinds: VectorKind[]): void {
    const raw = this.rawVectors();
    for (const kind of kinds) void raw[kind];
  }

  /** The catalog's matrix in a space, computed once per space. */
  matrix(space: EmbeddingSpace): SpaceMatrix {
    let m = this.spaces.get(space.id);
    if (!m) {
      m = { space, data: space.embed(this.rawVectors()), dim: space.dim };
      this.spaces.set(space.id, m);
    }
    return m;
  }

  /** The spaces whose float32 matrix is held in memory (none, for a server on current ANN files). */
  heldSpaces(): string[] {
    return [...this.spaces.keys()];
  }

  /** Drops cached matrices (after the space definitions change, e.g. a new head). */
  forgetSpaces(): void {
    this.spaces.clear();
    for (const ann of this.anns.values()) ann.then((a) => a.close(), () => {});
    this.anns.clear();
  }

  /** The method a search with `requested` uses: explicit, else the index's setting, else by size. */
  method(requested?: SearchSetting): SearchMethod {
    const setting = requested && requested !== 'auto' ? requested : this.annOptions.search ?? 'auto';
    if (setting !== 'auto') return setting;
    return this.size >= ANN_MIN_ITEMS ? 'ann' : 'exact';
  }

  private vocabulary?: Vocabulary;

  /**
   * The rows whose text holds every term, by the store's full-text engine (search/text.ts):
   * a word it matches nowhere is corrected to the nearest catalog word.
   */
  async textHits(terms: string[]): Promise<TextHits> {
    const store = this.store;
    if (!store.searchText) throw new LookalikeError('BAD_OPTION', { message: 'this store has no full-text search: search without text.' });
    this.vocabulary ??= new Vocabulary(this.metadata);
    const found = await matchText({ searchText: (t) => store.searchText!(t) }, this.vocabulary, terms);
    const relevance = new Float32Array(this.size);
    const mask = new Uint8Array(this.size);
    const rows: number[] = [];
    const best = found.matches.reduce((m, h) => Math.max(m, h.score), 0) || 1;
    for (const h of found.matches) {
      const row = this.rowById.get(h.id);
      if (row === undefined || mask[row]) continue;
      mask[row] = 1;
      relevance[row] = Math.max(1e-6, h.score / best);
      rows.push(row);
    }
    return { terms: found.terms, corrected: found.corrected, relevance, mask, rows: Int32Array.from(rows) };
  }

  /**
   * Products for a query vector with the extras of FindOptions: excluded items, and words
   * as a filter (only matching products, answered in the database for `db`) or as a
   * boost (the visual top candidates re-ranked by cosine + TEXT_BOOST x text relevance;
   * the score shown stays the cosine, the threshold applies to it).
   */
  async find(space: EmbeddingSpace, query: Float32Array, options: FindOptions = {}): Promise<SearchHit[]> {
    const k = checkK(options.k ?? DEFAULT_K);
    const boost = options.text && options.textMode === 'boost';
    const excluded = new Set((options.excludeIds ?? []).filter((id) => this.rowById.has(id)));
    const fetch = boost ? Math.max(100, k * BOOST_CANDIDATES_PER_RESULT) : k;
    const base = { ...options, k: Math.min(fetch + Math.max(0, excluded.size - 1), Math.max(1, this.size)), threshold: boost ? undefined : options.threshold };
    // Excluded items are fetched past and dropped, not masked: a mask would send ANN searches
    // down the filtered path (wider candidate lists); the first one the kernel skips itself.
    const [excludeId] = excluded;
    let hits: SearchHit[];
    if (this.method(options.search) === 'db') {
      hits = await this.searchDb(space, query, { ...base, excludeId, text: boost ? undefined : options.text?.terms });
    } else {
      let mask = this.maskOf(options.filters);
      if (options.text && !boost) {
        mask = mask ? Uint8Array.from(mask) : new Uint8Array(this.size).fill(1);
        for (let r = 0; r < mask.length; r++) mask[r] &= options.text.mask[r];
      }
      hits = await this.query(space, query, { ...base, excludeId, rowMask: mask });
    }
    hits = hits.filter((h) => !excluded.has(h.id));
    if (boost) {
      const relevance = options.text!.relevance;
      const boosted = (h: SearchHit) => h.score + TEXT_BOOST * relevance[this.rowById.get(h.id)!];
      hits = hits.filter((h) => options.threshold === undefined || h.score >= options.threshold)
        .map((h) => ({ h, b: boosted(h) })).sort((a, b) => b.b - a.b).map(({ h }) => h);
    }
    return hits.slice(0, k).map((h, i) => ({ ...h, rank: i + 1 }));
  }

  /**
   * Products ranked by a multi-example strategy (search/recommend.ts): every row scored
   * exactly against every example. The examples' own items are left out.
   */
  async findByExamples(space: EmbeddingSpace, liked: readonly Float32Array[], disliked: readonly Float32Array[], strategy: Exclude<RecommendStrategy, 'average'>, options: FindOptions = {}): Promise<SearchHit[]> {
    const { data, dim } = this.matrix(space);
    const scores = exampleScores(data, dim, liked, disliked, strategy);
    let mask = this.maskOf(options.filters);
    mask = mask ? Uint8Array.from(mask) : new Uint8Array(this.size).fill(1);
    if (options.text && options.textMode !== 'boost') for (let r = 0; r < mask.length; r++) mask[r] &= options.text.mask[r];
    if (options.text && options.textMode === 'boost') for (let r = 0; r < scores.length; r++) scores[r] += TEXT_BOOST * options.text.relevance[r];
    for (const id of options.excludeIds ?? []) { const r = this.rowById.get(id); if (r !== undefined) mask[r] = 0; }
    return this.toResults(topKFromScores(scores, { k: checkK(options.k ?? DEFAULT_K), threshold: checkThreshold(options.threshold), mask }));
  }

  /** Products matching words, best text match first (a text search without a photo). */
  textResults(text: TextHits, options: SearchOptions = {}): SearchHit[] {
    const k = checkK(options.k ?? DEFAULT_K);
    const mask = this.maskOf(options.filters);
    const rows = [...text.rows].filter((r) => !mask || mask[r]).slice(0, k);
    return this.toResults(rows.map((row) => ({ row, score: text.relevance[row] })));
  }

  /** Searches with a query vector in `space` (normalised), exactly or through the ANN index. */
  async query(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string; rowMask?: Uint8Array } = {}): Promise<SearchHit[]> {
    const method = this.method(options.search);
    if (method === 'db') return this.searchDb(space, query, options);
    if (method === 'ann') return this.searchAnn(space, query, options);
    return this.searchAsync(space, query, options);
  }

  /**
   * Through the ANN index: its candidates are re-ranked exactly against the full-precision
   * rows. Filters and thresholds keep their meaning: a filter leaving few rows is answered
   * exactly; otherwise more candidates are fetched in proportion to the rows it leaves, and
   * when they still hold fewer results than exist (or all of them pass the threshold),
   * the search widens and finally falls back to exact.
   */
  async searchAnn(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string; rowMask?: Uint8Array } = {}): Promise<SearchHit[]> {
    const view = await this.annView(space);
    return this.toResults(this.annHits(view, space, query, this.topKOptions(options), undefined, options.candidates));
  }

  /**
   * Through the database (pgvector's HNSW over the normalised max-pooled vectors): top-k,
   * threshold and filters answered in SQL. The store holds one space only, backbone:max.
   * Ids the database has but this engine does not yet (a replica a moment behind) are left
   * out; items' metadata come from the engine, as for every other method.
   */
  async searchDb(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string; text?: string[] } = {}): Promise<SearchHit[]> {
    if (!this.store.searchVectors || !this.store.canSearch) {
      throw new LookalikeError('BAD_OPTION', { message: 'search "db" (answered by the database) needs an index in PostgreSQL with the pgvector extension; this one is not: search "exact" or "ann".' });
    }
    if (space.id !== 'backbone:max') throw new LookalikeError('BAD_OPTION', { message: `search "db" searches the backbone's max-pooled vectors only, not ${space.id}: ask for pooling "max" (and no head mode), or search "exact" or "ann".` });
    const k = checkK(options.k ?? DEFAULT_K);
    const hits = await this.store.searchVectors(query, { k, threshold: checkThreshold(options.threshold), filters: options.filters, excludeId: options.excludeId, text: options.text });
    return this.toResults(hits.flatMap((h) => {
      const row = this.rowById.get(h.id);
      return row === undefined ? [] : [{ row, score: h.score }];
    }));
  }

  /**
   * Top-k of catalog rows through the ANN index, each query row excluding itself, among
   * the rows of `mask` (all without one): leave-one-out and held-out evaluation with ANN.
   */
  async annTopK(space: EmbeddingSpace, queryRows: Int32Array, k: number, mask?: Uint8Array, onProgress?: (done: number, total: number) => void): Promise<{ k: number; rows: Int32Array; scores: Float32Array }> {
    const { data, dim } = this.matrix(space);
    const view = await this.annView(space);
    const eligible = mask ? mask.reduce((s, v) => s + v, 0) : this.size;
    const kk = Math.min(k, eligible - (mask ? 0 : 1));
    const rows = new Int32Array(queryRows.length * kk).fill(-1);
    const scores = new Float32Array(queryRows.length * kk).fill(Number.NaN);
    queryRows.forEach((r, q) => {
      const hits = this.annHits(view, space, data.subarray(r * dim, (r + 1) * dim), { k: kk, exclude: r, mask }, eligible);
      hits.forEach((h, j) => { rows[q * kk + j] = h.row; scores[q * kk + j] = h.score; });
      if (onProgress && (q % 1024 === 1023 || q === queryRows.length - 1)) onProgress(q + 1, queryRows.length);
    });
    return { k: kk, rows, scores };
  }

  /**
   * Loads (or builds) what ANN searches in `space` go through: its own index, or for a
   * blended space (the photo blend) its parts' indexes (server start-up).
   */
  async prepareAnn(space: EmbeddingSpace): Promise<void> {
    await this.annView(space);
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
  private async annView(space: EmbeddingSpace): Promise<AnnView> {
    if (space.parts) {
      const parts = space.parts;
      const views = await Promise.all(parts.map((p) => this.annView(p.space)));
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
    return this.plainView(space, await this.ann(space));
  }

  private plainView(space: EmbeddingSpace, ann: AnnIndex): AnnView {
    const dim = space.dim;
    return {
      candidates: (query, count) => ann.searchRows(query, count),
      scorer: (query) => {
        const inMemory = this.spaces.get(space.id);
        if (inMemory || !ann.hasRowsFile) {
          const data = (inMemory ?? this.matrix(space)).data;
          return (row) => dotAt(data, row * dim, query, dim);
        }
        const buffer = new Float32Array(dim);
        return (row) => dotAt(ann.readRow(row, buffer), 0, query, dim);
      },
    };
  }

  private annHits(view: AnnView, space: EmbeddingSpace, query: Float32Array, opts: TopKOptions, eligibleRows?: number, candidates = 0): Hit[] {
    const n = this.size;
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
      if (count >= n / 2) { const { data, dim } = this.matrix(space); return topK(data, dim, query, opts); }
      const found = view.candidates(query, count);
      const { hits, lowest, deepest } = scoreRows(score, n, found, opts);
      const trusted = !opts.mask || deepest < FILTER_TRUSTED_SHARE * found.length;
      if (trusted && (hits.length >= want || (opts.threshold !== undefined && lowest < opts.threshold))) return hits;
      count *= 4;
    }
  }

  /**
   * The ANN index of a space: loaded from its files when they reflect the store's current
   * generation, else brought up to date incrementally (or built), measured and saved.
   */
  ann(space: EmbeddingSpace, onProgress?: (done: number, total: number) => void): Promise<AnnIndex> {
    let ann = this.anns.get(space.id);
    if (!ann) {
      ann = this.openAnn(space, onProgress);
      this.anns.set(space.id, ann);
      ann.catch(() => this.anns.delete(space.id));
    }
    return ann;
  }

  private async openAnn(space: EmbeddingSpace, onProgress?: (done: number, total: number) => void): Promise<AnnIndex> {
    const base = this.annBase(space);
    const generation = this.generation;
    const ids = this.items.map((i) => i.id);
    const loaded = base ? AnnIndex.load(base, space.id, space.dim) : undefined;
    if (loaded && loaded.meta.generation === generation && loaded.size === ids.length) {
      loaded.bindRows(ids);
      return loaded;
    }
    const ann = loaded ?? AnnIndex.create(space.id, space.dim);
    const report = ann.sync(ids, this.matrix(space).data, generation, onProgress);
    this.lastSync = report;
    if (report.added || report.removed || report.replaced || ann.meta.recallAt10 === undefined) {
      const { recall, queries } = await this.measureRecall(space, ann);
      ann.meta.recallAt10 = recall;
      ann.meta.recallQueries = queries;
    }
    if (base && this.annOptions.persist !== false) {
      try { ann.save(base, this.matrix(space).data); } catch { /* read-only index folder: rebuilt in memory next time */ }
    }
    return ann;
  }

  /** What the last ANN build or update did (bench, info). */
  lastSync?: SyncReport;

  /** The saved ANN index's description for a space, without loading or building it. */
  annStatus(space: EmbeddingSpace): { file?: string; meta?: AnnMeta; current: boolean } {
    const base = this.annBase(space);
    const meta = base ? AnnIndex.readMeta(base) : undefined;
    return { file: base && `${base}.usearch`, meta, current: !!meta && meta.generation === this.generation };
  }

  private annBase(space: EmbeddingSpace): string | undefined {
    const dir = this.annOptions.annDir;
    return dir ? path.join(dir, `ann-${space.id.replace(/[^A-Za-z0-9_.-]+/g, '_')}`) : undefined;
  }

  /** Recall@10 of re-ranked ANN search against exact search, over up to 200 catalog items. */
  async measureRecall(space: EmbeddingSpace, ann: AnnIndex, k = 10, queryCount = 200): Promise<{ recall: number; queries: number }> {
    const { data, dim } = this.matrix(space);
    const n = this.size;
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
      const hits = this.annHits(this.plainView(space, ann), space, queries.subarray(i * dim, (i + 1) * dim), { k: kk, exclude: rows[i] });
      for (const h of hits) if (truth.has(h.row)) found++;
    }
    return { recall: found / (nq * kk), queries: nq };
  }

  /** Searches with a query vector already in `space` (normalised), exactly. */
  search(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string } = {}): SearchHit[] {
    const { data, dim } = this.matrix(space);
    return this.toResults(topK(data, dim, query, this.topKOptions(options)));
  }

  /** Same as search; large catalogs are scored by onnxruntime (several times faster). */
  async searchAsync(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string; rowMask?: Uint8Array } = {}): Promise<SearchHit[]> {
    const { data, dim } = this.matrix(space);
    return this.toResults(await topKAsync(data, dim, query, this.topKOptions(options)));
  }

  /** `rowMask`: the rows eligible, already combining the filters with anything else (find). */
  private topKOptions(options: SearchOptions & { excludeId?: string; rowMask?: Uint8Array }): TopKOptions {
    return {
      k: checkK(options.k ?? DEFAULT_K),
      threshold: checkThreshold(options.threshold),
      mask: options.rowMask ?? this.maskOf(options.filters),
      exclude: options.excludeId !== undefined ? this.rowById.get(options.excludeId) : undefined,
    };
  }

  private readonly masks = new Map<string, Uint8Array | undefined>();

  /**
   * Row mask of a filter, remembered for the last few filters: building it reads every
   * item's metadata (milliseconds at 30k items), more than an ANN search itself costs.
   */
  private maskOf(filters: Filters | undefined): Uint8Array | undefined {
    if (!filters || !Object.values(filters).some((v) => v.length)) return undefined;
    const key = JSON.stringify(Object.entries(filters).sort(([a], [b]) => a.localeCompare(b)));
    if (this.masks.has(key)) return this.masks.get(key);
    const mask = filterMask(this.metadata, filters, this.columns);
    if (this.masks.size >= 32) this.masks.delete(this.masks.keys().next().value as string);
    this.masks.set(key, mask);
    return mask;
  }

  /** Searches through `ann`, built elsewhere over this catalog's rows in `space` (bench). */
  adoptAnn(space: EmbeddingSpace, ann: AnnIndex): void {
    this.anns.set(space.id, Promise.resolve(ann));
  }

  private toResults(hits: Hit[]): SearchHit[] {
    return hits.map((h, i) => {
      const item = this.items[h.row];
      return { id: item.id, rank: i + 1, score: h.score, metadata: item.metadata, image: item.image };
    });
  }

  /** The stored vector of a catalog item in `space`. */
  vectorOf(space: EmbeddingSpace, id: string): Float32Array {
    const row = this.rowOf(id);
    const { data, dim } = this.matrix(space);
    return data.subarray(row * dim, (row + 1) * dim);
  }

  /**
   * As vectorOf, without computing the space's matrix when searches go through an ANN index
   * whose rows file is current (a server that never holds the float32 matrix).
   */
  async vectorOfForSearch(space: EmbeddingSpace, id: string, search?: SearchSetting): Promise<Float32Array> {
    const row = this.rowOf(id);
    if (!this.spaces.has(space.id) && space.parts && this.method(search) === 'ann') {
      // A blend (the photo space) from its parts' vectors, each scaled as blendedSpace does:
      // its own matrix (n x 2,368 floats for a head's photo space) is never built for ANN search.
      const out = new Float32Array(space.dim);
      let at = 0;
      for (const part of space.parts) {
        const v = await this.vectorOfForSearch(part.space, id, search);
        const w = Math.sqrt(part.weight);
        for (let i = 0; i < v.length; i++) out[at + i] = w * v[i];
        at += part.space.dim;
      }
      return out;
    }
    if (!this.spaces.has(space.id) && !space.parts && this.method(search) === 'ann') {
      const ann = await this.ann(space);
      if (ann.hasRowsFile && !this.spaces.has(space.id)) return ann.readRow(row, new Float32Array(space.dim));
    }
    return this.vectorOf(space, id);
  }

  /** Closes the ANN indexes' rows files. */
  async close(): Promise<void> {
    for (const ann of this.anns.values()) (await ann.catch(() => undefined))?.close();
    this.anns.clear();
  }

  /** Value counts per column, over embedded items, optionally under filters. */
  facets(fields: string[] = this.columns, filters?: Filters): Record<string, Array<{ value: string; count: number }>> {
    const mask = this.productMask(filterMask(this.metadata, filters, this.columns));
    const out: Record<string, Array<{ value: string; count: number }>> = {};
    for (const field of fields) {
      const counts = new Map<string, number>();
      this.items.forEach((item, row) => {
        if (mask && !mask[row]) return;
        const v = item.metadata[field] ?? '';
        if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
      });
      out[field] = [...counts].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
    }
    return out;
  }

  /** Items passing the filters, paginated, in catalog order. */
  list(filters: Filters | undefined, offset: number, limit: number): { total: number; items: StoredItem[] } {
    const mask = this.productMask(filterMask(this.metadata, filters, this.columns));
    const matching = mask ? this.items.filter((_, r) => mask[r]) : this.items;
    const page = matching.slice(offset, offset + limit);
    return { total: matching.length, items: this.photos.multi ? page.map((i) => ({ ...i, metadata: productMetadata(i.metadata) })) : page };
  }
}
