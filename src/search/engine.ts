/**
 * The search engine over one index, a coordinator of its parts: the item table (ids,
 * metadata, facets, filter masks: search/items.ts), the per-space vectors (search/vectors.ts)
 * and per space the searchers that answer queries (search/searcher.ts), each made once
 * and kept, so that a query goes straight to its strategy.
 */
import type { Store, StoredItem, VectorKind } from '../store/types.js';
import { DEFAULT_K } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { checkK } from '../validate.js';
import { topKFromScores, type Hit } from './kernel.js';
import type { Filters } from './filters.js';
import type { EmbeddingSpace, RawVectors } from './space.js';
import type { AnnIndex, AnnMeta, SyncReport } from './ann.js';
import { BOOST_CANDIDATES_PER_RESULT, TEXT_BOOST, textHitsOf, Vocabulary, type TextHits, type TextMode } from './text.js';
import { exampleScores, type RecommendStrategy } from './recommend.js';
import { ItemTable, type SearchHit } from './items.js';
import type { ProductPhotos } from './products.js';
import { SpaceVectors, type SpaceMatrix } from './vectors.js';
import { methodOf, type SearchMethod, type SearchRequest, type SearchSetting, type Searcher } from './searcher.js';
import { ExactSearcher } from './exact-searcher.js';
import { AnnIndexes, AnnSearcher } from './ann-searcher.js';
import { DbSearcher } from './db-searcher.js';

export { ANN_MIN_ITEMS, SEARCH_SETTINGS, type SearchMethod, type SearchSetting } from './searcher.js';
export { FILTERED_EXACT_MAX } from './ann-searcher.js';
export type { SearchHit } from './items.js';
export type { SpaceMatrix } from './vectors.js';
export type { TextHits } from './text.js';

export interface SearchOptions {
  k?: number;
  threshold?: number;
  filters?: Filters;
  /** exact, ann, or auto (the index's setting, else ANN from ANN_MIN_ITEMS items). */
  search?: SearchSetting;
  /**
   * The least number of the graph's candidates re-ranked (ANN only). Photos ask for more
   * than catalog items do (PHOTO_ANN_CANDIDATES, photo/search.ts): a shopper's photo lies far from every
   * catalog vector, where the graph's order is poorer.
   */
  candidates?: number;
}

/** What a search may add to a vector: rows it must leave out, and words. */
export interface FindOptions extends SearchOptions {
  /** Items never returned (the examples of a recommendation). */
  excludeIds?: readonly string[];
  text?: TextHits;
  /** filter (default): only products matching the words; boost: matching products rank higher. */
  textMode?: TextMode;
}

/** The options of the one-method searches (query, search, searchAsync, searchAnn, searchDb). */
type MethodOptions = SearchOptions & { excludeId?: string; rowMask?: Uint8Array };

/** The searcher each method makes. */
interface SearcherOf { exact: ExactSearcher; ann: AnnSearcher; db: DbSearcher }

function requestOf(options: MethodOptions): SearchRequest {
  return { k: options.k ?? DEFAULT_K, threshold: options.threshold, filters: options.filters, excludeId: options.excludeId, rowMask: options.rowMask, candidates: options.candidates };
}

export class SearchEngine {
  private readonly table: ItemTable;
  private readonly vectors: SpaceVectors;
  private readonly annIndexes: AnnIndexes;
  /** Per space id, the searcher of each method asked for so far. */
  private readonly searchers = new Map<string, Partial<SearcherOf>>();
  private readonly makeSearcher: { [M in SearchMethod]: (space: EmbeddingSpace) => SearcherOf[M] } = {
    exact: (space) => new ExactSearcher(space, this.table, this.vectors),
    ann: (space) => new AnnSearcher(space, this.table, this.vectors, this.annIndexes),
    db: (space) => new DbSearcher(space, this.store, this.table, this.vectors),
  };
  /** The method of a search that names none: the index's (or process's) setting, else by size. */
  private readonly defaultMethod: SearchMethod;
  private vocabulary?: Vocabulary;
  /** The store's data generation this engine's items and rows come from. */
  readonly generation: number;

  /**
   * `annDir`: where ANN index files live (beside index.sqlite); without it the ANN index is
   * built in memory on first use. `search`: the index's search setting.
   */
  constructor(private readonly store: Store, columns: string[], annOptions: { annDir?: string; persist?: boolean; search?: SearchSetting } = {}) {
    this.generation = store.generation();
    this.table = ItemTable.fromStore(store, columns);
    this.vectors = new SpaceVectors(store, this.table.size);
    this.annIndexes = new AnnIndexes(this.table, this.vectors, this.generation, { annDir: annOptions.annDir, persist: annOptions.persist });
    this.defaultMethod = methodOf(annOptions.search ?? 'auto', this.table.size);
  }

  /** Products and their photos' rows (search/products.ts): a row is a photo, a product may have several. */
  get photos(): ProductPhotos {
    return this.table.photos;
  }

  /** Embedded items, in matrix row order. */
  get items(): readonly StoredItem[] {
    return this.table.items;
  }

  get columns(): string[] {
    return this.table.columns;
  }

  get size(): number {
    return this.table.size;
  }

  rowOf(id: string): number {
    return this.table.rowOf(id);
  }

  has(id: string): boolean {
    return this.table.has(id);
  }

  /** Raw stored vectors of every embedded item, each kind loaded on first use (SpaceVectors). */
  rawVectors(): RawVectors {
    return this.vectors.rawVectors();
  }

  /** Loads these kinds of raw vectors now rather than on first use. */
  pin(kinds: VectorKind[]): void {
    this.vectors.pin(kinds);
  }

  /** The catalog's matrix in a space, computed once per space. */
  matrix(space: EmbeddingSpace): SpaceMatrix {
    return this.vectors.matrix(space);
  }

  /** The spaces whose float32 matrix is held in memory (none, for a server on current ANN files). */
  heldSpaces(): string[] {
    return this.vectors.heldSpaces();
  }

  /** Drops cached matrices, ANN indexes and searchers (after the space definitions change, e.g. a new head). */
  forgetSpaces(): void {
    this.vectors.forget();
    this.annIndexes.forget();
    this.searchers.clear();
  }

  /** The method a search with `requested` uses: explicit, else the index's setting, else by size. */
  method(requested?: SearchSetting): SearchMethod {
    return requested && requested !== 'auto' ? requested : this.defaultMethod;
  }

  /** The searcher of a space for a method: made on first use, then the same one every time. */
  private searcherOf<M extends SearchMethod>(space: EmbeddingSpace, method: M): SearcherOf[M] {
    let made = this.searchers.get(space.id);
    if (!made) this.searchers.set(space.id, (made = {}));
    return (made[method] ??= this.makeSearcher[method](space));
  }

  /** The searcher a search in `space` goes through (its own `search` option, else the engine's method). */
  searcher(space: EmbeddingSpace, requested?: SearchSetting): Searcher {
    const method = this.method(requested);
    // A setting in another case ("ANN") passes the door's check, which ignores case, and
    // has always been searched exactly here; kept so until the door hands on its checked value.
    return this.searcherOf(space, Object.hasOwn(this.makeSearcher, method) ? method : 'exact');
  }

  /**
   * The rows whose text holds every term, by the store's full-text engine (search/text.ts):
   * a word it matches nowhere is corrected to the nearest catalog word.
   */
  async textHits(terms: string[]): Promise<TextHits> {
    const store = this.store;
    if (!store.searchText) throw new LookalikeError('BAD_OPTION', { message: 'this store has no full-text search: search without text.' });
    this.vocabulary ??= new Vocabulary(this.table.metadata);
    return textHitsOf(this.table, { searchText: (t) => store.searchText!(t) }, this.vocabulary, terms);
  }

  /**
   * Products for a query vector with the extras of FindOptions: excluded items, and words
   * as a filter (only matching products, answered in the database for `db`) or as a
   * boost (the visual top candidates re-ranked by cosine + TEXT_BOOST x text relevance;
   * the score shown stays the cosine, the threshold applies to it).
   */
  async find(space: EmbeddingSpace, query: Float32Array, options: FindOptions = {}): Promise<SearchHit[]> {
    const k = options.k ?? DEFAULT_K;
    const boost = options.text && options.textMode === 'boost';
    const excluded = new Set((options.excludeIds ?? []).filter((id) => this.table.has(id)));
    const fetch = boost ? Math.max(100, k * BOOST_CANDIDATES_PER_RESULT) : k;
    // The k given was checked where the library was entered; the widened one can pass
    // MAX_K (a boost of k > 200, a dedupe that widens), and is refused here as it always was.
    const wanted = checkK(Math.min(fetch + Math.max(0, excluded.size - 1), Math.max(1, this.size)));
    // Excluded items are fetched past and dropped, not masked: a mask would send ANN searches
    // down the filtered path (wider candidate lists); the first one the kernel skips itself.
    const [excludeId] = excluded;
    const rows = await this.searcher(space, options.search).search(query, {
      k: wanted, threshold: boost ? undefined : options.threshold, filters: options.filters,
      text: boost ? undefined : options.text, excludeId, candidates: options.candidates,
    });
    let hits = this.table.results(rows).filter((h) => !excluded.has(h.id));
    if (boost) {
      const relevance = options.text!.relevance;
      const boosted = (h: SearchHit) => h.score + TEXT_BOOST * relevance[this.table.rowIfAny(h.id)!];
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
    const { data, dim } = this.vectors.matrix(space);
    const scores = exampleScores(data, dim, liked, disliked, strategy);
    let mask = this.table.maskOf(options.filters);
    mask = mask ? Uint8Array.from(mask) : new Uint8Array(this.size).fill(1);
    if (options.text && options.textMode !== 'boost') for (let r = 0; r < mask.length; r++) mask[r] &= options.text.mask[r];
    if (options.text && options.textMode === 'boost') for (let r = 0; r < scores.length; r++) scores[r] += TEXT_BOOST * options.text.relevance[r];
    for (const id of options.excludeIds ?? []) { const r = this.table.rowIfAny(id); if (r !== undefined) mask[r] = 0; }
    return this.table.results(topKFromScores(scores, { k: options.k ?? DEFAULT_K, threshold: options.threshold, mask }));
  }

  /** Products matching words, best text match first (a text search without a photo). */
  textResults(text: TextHits, options: SearchOptions = {}): SearchHit[] {
    const k = options.k ?? DEFAULT_K;
    const mask = this.table.maskOf(options.filters);
    const rows = [...text.rows].filter((r) => !mask || mask[r]).slice(0, k);
    return this.table.results(rows.map((row) => ({ row, score: text.relevance[row] })));
  }

  /** Searches with a query vector in `space` (normalised), exactly or through the ANN index. */
  async query(space: EmbeddingSpace, query: Float32Array, options: MethodOptions = {}): Promise<SearchHit[]> {
    return this.results(this.searcher(space, options.search).search(query, requestOf(options)));
  }

  /**
   * Through the ANN index: its candidates are re-ranked exactly against the full-precision
   * rows (search/ann-searcher.ts says how filters and thresholds keep their meaning).
   */
  async searchAnn(space: EmbeddingSpace, query: Float32Array, options: MethodOptions = {}): Promise<SearchHit[]> {
    return this.results(this.searcherOf(space, 'ann').search(query, requestOf(options)));
  }

  /**
   * Through the database (pgvector's HNSW over the normalised max-pooled vectors): top-k,
   * threshold and filters answered in SQL (search/db-searcher.ts). Items' metadata come
   * from the engine, as for every other method.
   */
  async searchDb(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string; text?: string[] } = {}): Promise<SearchHit[]> {
    const text = options.text && { terms: options.text };
    return this.results(this.searcherOf(space, 'db').search(query, { ...requestOf(options), text }));
  }

  /** Searches with a query vector already in `space` (normalised), exactly. */
  search(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string } = {}): SearchHit[] {
    return this.table.results(this.searcherOf(space, 'exact').searchNow(query, requestOf(options)));
  }

  /** Same as search; large catalogs are scored by onnxruntime (several times faster). */
  async searchAsync(space: EmbeddingSpace, query: Float32Array, options: MethodOptions = {}): Promise<SearchHit[]> {
    return this.results(this.searcherOf(space, 'exact').search(query, requestOf(options)));
  }

  private async results(hits: Promise<Hit[]>): Promise<SearchHit[]> {
    return this.table.results(await hits);
  }

  /**
   * Top-k of catalog rows through the ANN index, each query row excluding itself, among
   * the rows of `mask` (all without one): leave-one-out and held-out evaluation with ANN.
   */
  annTopK(space: EmbeddingSpace, queryRows: Int32Array, k: number, mask?: Uint8Array, onProgress?: (done: number, total: number) => void): Promise<{ k: number; rows: Int32Array; scores: Float32Array }> {
    return this.searcherOf(space, 'ann').topKOfRows(queryRows, k, mask, onProgress);
  }

  /**
   * Loads (or builds) what ANN searches in `space` go through: its own index, or for a
   * blended space (the photo blend) its parts' indexes (server start-up).
   */
  async prepareAnn(space: EmbeddingSpace): Promise<void> {
    await this.searcherOf(space, 'ann').prepare();
  }

  /**
   * The ANN index of a space: loaded from its files when they reflect the store's current
   * generation, else brought up to date incrementally (or built), measured and saved.
   */
  ann(space: EmbeddingSpace, onProgress?: (done: number, total: number) => void): Promise<AnnIndex> {
    return this.annIndexes.index(space, onProgress);
  }

  /** What the last ANN build or update did (bench, info). */
  get lastSync(): SyncReport | undefined {
    return this.annIndexes.lastSync;
  }

  /** The saved ANN index's description for a space, without loading or building it. */
  annStatus(space: EmbeddingSpace): { file?: string; meta?: AnnMeta; current: boolean } {
    return this.annIndexes.status(space);
  }

  /** Recall@10 of re-ranked ANN search against exact search, over up to 200 catalog items. */
  measureRecall(space: EmbeddingSpace, ann: AnnIndex, k = 10, queryCount = 200): Promise<{ recall: number; queries: number }> {
    return this.annIndexes.measureRecall(space, ann, k, queryCount);
  }

  /** Searches through `ann`, built elsewhere over this catalog's rows in `space` (bench). */
  adoptAnn(space: EmbeddingSpace, ann: AnnIndex): void {
    this.annIndexes.adopt(space, ann);
  }

  /** The stored vector of a catalog item in `space`. */
  vectorOf(space: EmbeddingSpace, id: string): Float32Array {
    return this.vectors.row(space, this.table.rowOf(id));
  }

  /**
   * As vectorOf, read where the search's method keeps it: through an ANN index whose rows
   * file is current, without computing the space's matrix (a server that never holds it).
   */
  async vectorOfForSearch(space: EmbeddingSpace, id: string, search?: SearchSetting): Promise<Float32Array> {
    const row = this.table.rowOf(id);
    return this.searcher(space, search).vectorOf(row);
  }

  /** Closes the ANN indexes' rows files. */
  async close(): Promise<void> {
    await this.annIndexes.close();
  }

  /** Value counts per column, over embedded items, optionally under filters. */
  facets(fields?: string[], filters?: Filters): Record<string, Array<{ value: string; count: number }>> {
    return this.table.facets(fields, filters);
  }

  /** Items passing the filters, paginated, in catalog order. */
  list(filters: Filters | undefined, offset: number, limit: number): { total: number; items: StoredItem[] } {
    return this.table.list(filters, offset, limit);
  }
}
