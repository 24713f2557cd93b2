/**
 * The library's front door: an opened index that answers "which products look like
 * this?". The CLI, the HTTP server, evaluation and training all go through it.
 */
import { DEFAULT_K, DEFAULT_THRESHOLD, DUPLICATE_NEIGHBOURS, DUPLICATE_THRESHOLD, STYLE_ID_COLUMNS } from './defaults.js';
import { LookalikeError } from './errors.js';
import { Embedder, indexArithmetic, type Arithmetic } from './model/embedder.js';
import type { Localisation, ProposedRegion, Region } from './model/localise.js';
import { DEFAULT_LOCALISATION, expandedQuery, photoBatchVectors, withinRegion, type PhotoVectors } from './query/photo.js';
import { imageFingerprint, storedSettings, type EmbeddingSettings, type Pooling } from './model/registry.js';
import { prepareImage } from './image/prepare.js';
import { prepareOptionsFor } from './image/options.js';
import { openStore } from './store/open.js';
import { storeCacheDir } from './paths.js';
import { describeLocation, indexArgs } from './store/location.js';
import type { IndexManifest, Store, VectorKind } from './store/types.js';
import { SearchEngine, PHOTO_ANN_CANDIDATES, SEARCH_SETTINGS, type SearchHit, type SearchOptions, type SearchSetting } from './search/engine.js';
import { backboneSpace, type EmbeddingSpace } from './search/space.js';
import { batchTopK, normaliseRows } from './search/kernel.js';
import { groupNeighbours, withoutNearDuplicates } from './search/duplicates.js';
import { foldVariants, type Variant } from './search/variants.js';
import { HeadSpaces } from './head/index-head.js';
import { MODES } from './head/head.js';
import { checkFilterFields } from './search/filters.js';
import { checkChoice, checkK, checkPositiveInteger, checkThreshold, invalidParameterError, MAX_K } from './validate.js';

export interface QueryOptions extends SearchOptions {
  /** Override the index's pooling (both are stored). */
  pooling?: Pooling;
  /** Settings the caller expects; refused when they differ from the index's. */
  expect?: Partial<EmbeddingSettings>;
  /** Which notion of similarity to use, when the index has spaces beyond the backbone. */
  mode?: string;
  /**
   * Hide near-duplicates of a better-ranked hit (photos whose stored vectors have a cosine of
   * at least DUPLICATE_THRESHOLD): the list still holds k products, each listing in
   * `duplicates` the ids it hid.
   */
  dedupe?: boolean;
  /**
   * 'style': one result per style, the best variant first, the others folded under it in
   * `variants` (the style is the catalog's style column: styleColumn()); or any catalog
   * column to group by. Without a style column, 'style' changes nothing.
   */
  group?: string;
}

/** A group of near-duplicate products (`Lookalike.duplicates`). */
export interface DuplicateGroupReport {
  /** In catalog order, the first being the one a shop would usually keep. */
  items: Array<{ id: string; metadata: Record<string, string>; image: string }>;
  /** The lowest and highest cosine among the pairs that joined the group. */
  minScore: number;
  maxScore: number;
}

export interface DuplicatesReport {
  threshold: number;
  /** The space compared: the backbone's stored vectors in the index's pooling. */
  space: string;
  /** Embedded products looked at. */
  items: number;
  /** Products in some group (the sum of the groups' sizes). */
  duplicated: number;
  groups: DuplicateGroupReport[];
}

/** How a photo (not a catalog item) is turned into query vectors. */
export interface PhotoOptions {
  /** Only this part of the photo (relative x, y, w, h): the box a shopper drew. */
  crop?: Region;
  /** Pool over the product's cells of the feature map (default: zoom) or over the whole photo. */
  localise?: Localisation;
  /**
   * When the top result stands out, search the rest with its vector added (default true;
   * query/photo.ts expandedQuery). false: the photo's own vector only.
   */
  expand?: boolean;
}

export { DEFAULT_LOCALISATION, photoVectors, type PhotoVectors } from './query/photo.js';

export interface SearchResponse {
  /** `warnings`: damage the decoder worked around in the query photo. */
  query: {
    kind: 'image' | 'item'; id?: string; label?: string; crop?: Region; warnings?: string[];
    /** More like an item, with dedupe: the item's own near-duplicates, left out of the results. */
    duplicates?: string[];
    /** More like an item, grouped: the other variants of the item's own style, left out of the results. */
    variants?: Variant[];
    /** The column results were grouped by, when they were. */
    groupedBy?: string;
    /** A photo: the part the second look went to (`zoom`), relative to the (cropped) photo. */
    zoom?: Region;
    /** A photo: whether its results were searched with its top result's vector as well. */
    expanded?: boolean;
  };
  space: string;
  /** The threshold applied: the caller's, else the tuned default, else none. */
  threshold?: number;
  results: SearchHit[];
  /** For a photo: up to 3 regions where products seem to be, relative to the photo. */
  regions?: ProposedRegion[];
}

/** The index's search setting (`lookalike index --search`), auto when unset. */
export function searchSettingOf(manifest: IndexManifest): SearchSetting {
  const s = manifest.extensions?.search;
  return SEARCH_SETTINGS.includes(s as SearchSetting) ? (s as SearchSetting) : 'auto';
}

/** How long a replaced engine stays open for the searches still running on it. */
const ENGINE_RETIRE_MS = 30_000;

/** The raw vectors a manifest's default searches read: a head reads all three kinds. */
function kindsFor(manifest: IndexManifest): VectorKind[] {
  return manifest.extensions?.head ? ['max', 'avg', 'colour'] : [manifest.settings.pooling, 'colour'];
}

export class Lookalike {
  private current: { engine: SearchEngine; manifest: Readonly<IndexManifest>; head?: HeadSpaces };
  private embedder?: Promise<Embedder>;

  private constructor(readonly store: Store, readonly indexDir: string, private readonly readonly = false, private readonly search?: SearchSetting) {
    this.current = this.build(store.getManifest()!);
  }

  /** An engine over the store as it is now. */
  private build(manifest: IndexManifest): { engine: SearchEngine; manifest: Readonly<IndexManifest> } {
    // The ANN index is kept beside index.sqlite (a read-only open loads it but never writes);
    // a shared store has no folder, so each replica keeps it in its own cache, where the next
    // start (and the next change, incrementally) picks it up instead of rebuilding it.
    const annDir = this.store.folder ?? storeCacheDir(this.store.location);
    const engine = new SearchEngine(this.store, manifest.catalog.columns, { annDir, persist: !this.readonly || !this.store.folder, search: this.search ?? searchSettingOf(manifest) });
    // A shared store swaps its matrices on refresh: this engine takes its rows now, so that
    // they always match its items, whatever the store holds later.
    if (this.store.refresh) engine.pin(kindsFor(manifest));
    return { engine, manifest };
  }

  /**
   * `location`: an index folder, or a PostgreSQL location (store/location.ts). `search`
   * overrides the index's search setting for this process (`serve --search`): auto, exact
   * or ann; a search's own `search` option still comes first.
   */
  static async open(indexDir: string, options: { readonly?: boolean; search?: SearchSetting } = {}): Promise<Lookalike> {
    checkChoice(options.search, 'search', SEARCH_SETTINGS);
    const store = await openStore(indexDir, { readonly: options.readonly });
    try {
      const manifest = store.getManifest();
      if (!manifest || store.count().embedded === 0) throw new LookalikeError('INDEX_EMPTY', { path: describeLocation(indexDir), args: indexArgs(indexDir) });
      await store.preload?.(kindsFor(manifest));
      const lookalike = new Lookalike(store, indexDir, options.readonly, options.search);
      lookalike.current.head = await HeadSpaces.open(manifest, store, lookalike.engine);
      return lookalike;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  get engine(): SearchEngine {
    return this.current.engine;
  }

  get manifest(): Readonly<IndexManifest> {
    return this.current.manifest;
  }

  /** The store's data generation these answers come from (`/api/health`). */
  get generation(): number {
    return this.engine.generation;
  }

  /**
   * Catches up with changes other processes made to a shared store (new, changed and
   * removed items, a new head, tuned settings). The new engine is built and warmed beside
   * the old one, which keeps answering until it is swapped in. True when anything changed.
   */
  async refresh(): Promise<boolean> {
    if (!this.store.refresh) return false;
    await this.store.refresh();
    if (this.store.generation() === this.engine.generation) return false;
    return this.rebuild();
  }

  /** Rebuilds the engine over the store's current snapshot (after `store.refresh`). */
  async rebuild(): Promise<boolean> {
    const manifest = this.store.getManifest();
    if (!manifest || this.store.count().embedded === 0) return false;
    await this.store.preload?.(kindsFor(manifest));
    const next: { engine: SearchEngine; manifest: Readonly<IndexManifest>; head?: HeadSpaces } = this.build(manifest);
    next.head = await HeadSpaces.open(manifest, this.store, next.engine);
    const photo = next.head ? next.head.photoSpace() : backboneSpace(manifest.settings.pooling, manifest.dimension);
    if (next.engine.method() === 'ann') {
      await next.engine.prepareAnn(photo);
      await next.engine.prepareAnn(next.head ? next.head.space() : photo);
    } else {
      next.engine.matrix(photo);
    }
    const previous = this.current.engine;
    this.current = next;
    // Searches that started on the old engine may still read its ANN rows files: close them
    // once those have surely finished.
    setTimeout(() => void previous.close(), ENGINE_RETIRE_MS).unref();
    return true;
  }

  /** The trained head's spaces, when the index has a head (`lookalike train`). */
  get head(): HeadSpaces | undefined {
    return this.current.head;
  }

  get settings(): EmbeddingSettings {
    return storedSettings(this.manifest.settings);
  }

  /**
   * The space searches use: the trained head's (in `mode`) when the index has one and no
   * pooling is asked for, else the backbone's.
   */
  space(options: { pooling?: Pooling; mode?: string } = {}): EmbeddingSpace {
    checkChoice(options.mode, 'mode', MODES);
    checkChoice(options.pooling, 'pooling', ['max', 'avg']);
    if (this.head && !options.pooling) return this.head.space(options.mode);
    return backboneSpace(options.pooling ?? this.settings.pooling, this.manifest.dimension);
  }

  /**
   * The space a photo is searched in: as `space`, except that a head's space is blended with
   * the plain backbone (head/index-head.ts PHOTO_BLEND), which keeps shopper photos found.
   */
  photoSpace(options: { pooling?: Pooling; mode?: string } = {}): EmbeddingSpace {
    if (this.head && !options.pooling) return this.head.photoSpace(options.mode);
    return this.space(options);
  }

  private checkSettings(expect: Partial<EmbeddingSettings> | undefined): void {
    if (!expect) return;
    const wanted = { ...this.settings, ...Object.fromEntries(Object.entries(expect).filter(([, v]) => v !== undefined)) } as EmbeddingSettings;
    if (imageFingerprint(wanted) !== imageFingerprint(this.settings)) {
      throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(this.indexDir), indexed: imageFingerprint(this.settings), requested: imageFingerprint(wanted) });
    }
  }

  private loadEmbedder(): Promise<Embedder> {
    // The index's precision, and for int8 its calibration: the same model that embedded the catalog.
    this.embedder ??= Embedder.create(this.settings.backbone, { precision: this.settings.precision, calibration: this.manifest.calibration }).then((e) => {
      if (e.weightsId !== this.manifest.weightsId) {
        throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(this.indexDir), indexed: this.manifest.weightsId, requested: e.weightsId });
      }
      return e;
    });
    return this.embedder;
  }

  /**
   * Warms the backbone and the photo search matrix up so the first query is not slow
   * (server start), and loads (or brings up to date) the ANN indexes searches go through.
   */
  async warmUp(): Promise<void> {
    await this.loadEmbedder();
    if (this.engine.method() === 'ann') {
      // Current ANN files are loaded as they are: no float32 matrix is computed or held.
      await this.engine.prepareAnn(this.photoSpace());
      await this.engine.prepareAnn(this.space());
    } else {
      this.engine.matrix(this.photoSpace());
      this.engine.matrix(this.space());
    }
  }

  /**
   * Raw vectors of an image that is not in the catalog. With `localise: 'none'` they are
   * what the index would store for it; by default they describe the product found in it.
   */
  async embedImage(input: string | Buffer, label?: string, maxPixels?: number, photo: PhotoOptions = {}): Promise<PhotoVectors & { warnings: string[] }> {
    const prepared = await prepareImage(input, { ...prepareOptionsFor(this.settings), label, maxPixels, crop: photo.crop });
    const embedder = await this.loadEmbedder();
    const [vectors] = await photoBatchVectors(embedder, this.settings, [{ input, prepared, crop: photo.crop, label, maxPixels }], photo.localise ?? DEFAULT_LOCALISATION);
    return { ...vectors, warnings: prepared.warnings };
  }

  /** The backbone, loaded once (batched evaluation runs it directly). */
  backbone(): Promise<Embedder> {
    return this.loadEmbedder();
  }

  /** The arithmetic this process embeds in for the index, and the CPU it relies on (no model load). */
  arithmetic(): Promise<Arithmetic> {
    return indexArithmetic(this.manifest.calibration);
  }

  /**
   * Search defaults for what a query leaves unset: the k and threshold stored by
   * `lookalike tune --apply` (manifest.extensions.tuned), else DEFAULT_K and DEFAULT_THRESHOLD (none).
   * The tuned threshold is a cosine in the space it was tuned in, so it only applies there.
   */
  defaults(space: EmbeddingSpace = this.space()): { k: number; threshold?: number } {
    const tuned = this.manifest.extensions?.tuned as { k?: number; threshold?: number; space?: string } | undefined;
    return { k: tuned?.k ?? DEFAULT_K, threshold: tuned?.space === space.id ? tuned.threshold : DEFAULT_THRESHOLD };
  }

  /** Refuses bad options before any work (an image search would otherwise embed first). */
  private checkQuery(options: QueryOptions): void {
    if (options.k !== undefined) checkK(options.k);
    checkPositiveInteger(options.candidates, 'candidates');
    checkChoice(options.search, 'search', SEARCH_SETTINGS);
    checkThreshold(options.threshold);
    checkFilterFields(options.filters, this.manifest.catalog.columns);
    if (options.dedupe !== undefined && typeof options.dedupe !== 'boolean') throw invalidParameterError('dedupe', 'true or false', options.dedupe);
    if (options.group !== undefined && (typeof options.group !== 'string' || (options.group.toLowerCase() !== 'style' && !this.groupColumn(options.group)))) {
      throw invalidParameterError('group', `"style" or one of the catalog's columns (${this.manifest.catalog.columns.join(', ')})`, options.group);
    }
    this.space(options);
    this.checkSettings(options.expect);
  }

  async searchByImage(input: string | Buffer, options: QueryOptions & PhotoOptions & { label?: string; maxPixels?: number } = {}): Promise<SearchResponse> {
    this.checkQuery(options);
    const raw = await this.embedImage(input, options.label, options.maxPixels, { crop: options.crop, localise: options.localise });
    const space = this.photoSpace(options);
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const k = options.k ?? defaults.k;
    const search = { candidates: PHOTO_ANN_CANDIDATES, ...options };
    const query = space.embed(raw);
    // Two results at least, to see whether the top one stands out (query/photo.ts
    // expandedQuery); the threshold applies to the list returned (below), not to that look.
    const first = await this.engine.query(space, query, { ...search, threshold: undefined, k: Math.max(k, 2) });
    const next = options.expand !== false && first.length >= 2
      ? expandedQuery(query, first.map((r) => r.score), await this.engine.vectorOfForSearch(space, first[0].id, options.search))
      : undefined;
    const expanded = next !== undefined;
    // The threshold applies to the list returned, not to the look that decided the expansion.
    const fetch = async (want: number) => {
      const hits = !next && (want <= first.length || first.length < Math.max(k, 2)) ? first : await this.engine.query(space, next ?? query, { ...search, threshold: undefined, k: want });
      return hits.filter((r) => threshold === undefined || r.score >= threshold);
    };
    const { results, groupedBy } = await this.finish(k, options, fetch);
    // Found inside the shopper's box: given in the whole photo's coordinates.
    const regions = options.crop ? raw.regions.map((r) => ({ ...withinRegion(options.crop, r), score: r.score })) : raw.regions;
    return {
      query: { kind: 'image', label: options.label, crop: options.crop, ...(raw.zoom && { zoom: raw.zoom }), expanded, ...(raw.warnings.length && { warnings: raw.warnings }), ...(groupedBy && { groupedBy }) },
      space: space.id, threshold, results, regions,
    };
  }

  /** More like this: the same fast path as a photo query, the item itself excluded. */
  async searchById(id: string, options: QueryOptions = {}): Promise<SearchResponse> {
    this.checkQuery(options);
    const space = this.space(options);
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const query = await this.engine.vectorOfForSearch(space, id, options.search);
    const { results, ofQuery, variantsOfQuery, groupedBy } = await this.finish(options.k ?? defaults.k, options, (want) => this.engine.query(space, query, { ...options, k: want, threshold, excludeId: id }), id);
    return {
      query: { kind: 'item', id, ...(ofQuery.length && { duplicates: ofQuery }), ...(variantsOfQuery.length && { variants: variantsOfQuery }), ...(groupedBy && { groupedBy }) },
      space: space.id, threshold, results,
    };
  }

  /** The catalog column naming each product's style (STYLE_ID_COLUMNS, any case), if it has one. */
  styleColumn(): string | undefined {
    const columns = this.manifest.catalog.columns;
    for (const name of STYLE_ID_COLUMNS) {
      const found = columns.find((c) => c.toLowerCase() === name.toLowerCase());
      if (found) return found;
    }
    return undefined;
  }

  /** The column a search groups by: 'style' is the style column (none: no grouping), else the column named. */
  private groupColumn(group: string | undefined): string | undefined {
    if (group === undefined) return undefined;
    if (group.toLowerCase() === 'style') return this.styleColumn();
    return this.manifest.catalog.columns.find((c) => c === group) ?? this.manifest.catalog.columns.find((c) => c.toLowerCase() === group.toLowerCase());
  }

  /**
   * The k results of a search from `fetch(want)` (the best `want` hits): as they come, or
   * without near-duplicates (options.dedupe), for which more are fetched until k remain or
   * the catalog runs out.
   */
  private async finish(k: number, options: QueryOptions, fetch: (want: number) => Promise<SearchHit[]>, queryId?: string): Promise<{ results: SearchHit[]; ofQuery: string[]; variantsOfQuery: Variant[]; groupedBy?: string }> {
    const column = this.groupColumn(options.group);
    if (!options.dedupe && !column) return { results: (await fetch(k)).slice(0, k), ofQuery: [], variantsOfQuery: [] };
    const limit = Math.min(this.engine.size, MAX_K);
    const query = queryId === undefined || !options.dedupe ? undefined : Float32Array.from(await this.duplicateVector(queryId, options.search));
    const queryStyle = queryId === undefined || !column ? undefined : this.engine.items[this.engine.rowOf(queryId)].metadata[column] || undefined;
    for (let want = Math.min(limit, Math.max(3 * k, k + 10)); ; want = Math.min(limit, want * 4)) {
      const hits = await fetch(want);
      let kept: SearchHit[] = hits, ofQuery: string[] = [], variantsOfQuery: Variant[] = [];
      // Near-duplicates first: a duplicate that is also a variant is hidden as a duplicate.
      if (options.dedupe) ({ kept, ofQuery } = await withoutNearDuplicates(kept, column ? kept.length : k, DUPLICATE_THRESHOLD, (hit) => this.duplicateVector(hit.id, options.search), query));
      if (column) ({ kept, ofQuery: variantsOfQuery } = foldVariants(kept, k, (hit) => hit.metadata[column], queryStyle));
      if (kept.length >= k || hits.length < want || want >= limit) {
        return { results: kept.slice(0, k).map((hit, i) => ({ ...hit, rank: i + 1 })), ofQuery, variantsOfQuery, groupedBy: column };
      }
    }
  }

  /**
   * An item's unit vector in the space near-duplicates are told apart in: the backbone's, in
   * the index's pooling. Without a head that is the space searched (its ANN rows file or
   * matrix is at hand); with one, the stored raw vectors a head's engine already holds.
   */
  private async duplicateVector(id: string, search?: QueryOptions['search']): Promise<Float32Array> {
    const pooling = this.settings.pooling;
    if (!this.head) return this.engine.vectorOfForSearch(backboneSpace(pooling, this.manifest.dimension), id, search);
    const raw = this.engine.rawVectors();
    const row = this.engine.rowOf(id);
    return normaliseRows(Float32Array.from((pooling === 'max' ? raw.max : raw.avg).subarray(row * raw.dim, (row + 1) * raw.dim)), raw.dim);
  }

  /**
   * Groups of products whose photos are near-identical: the same packshot under two ids,
   * re-uploads. Each product's `neighbours` nearest (default DUPLICATE_NEIGHBOURS) are
   * compared in the backbone's space; pairs at or above `threshold` (default
   * DUPLICATE_THRESHOLD) join their groups.
   */
  async duplicates(options: { threshold?: number; neighbours?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<DuplicatesReport> {
    const threshold = checkThreshold(options.threshold, 'threshold') ?? DUPLICATE_THRESHOLD;
    const neighbours = checkPositiveInteger(options.neighbours, 'neighbours') ?? DUPLICATE_NEIGHBOURS;
    if (neighbours > 100) throw invalidParameterError('neighbours', 'a whole number from 1 to 100', neighbours);
    const space = backboneSpace(this.settings.pooling, this.manifest.dimension);
    const n = this.engine.size;
    const rows = Int32Array.from({ length: n }, (_, i) => i);
    let hits: { k: number; rows: Int32Array; scores: Float32Array };
    if (this.engine.method() === 'ann') {
      hits = await this.engine.annTopK(space, rows, neighbours, undefined, options.onProgress);
    } else {
      const { data, dim } = this.engine.matrix(space);
      hits = await batchTopK(data, dim, data, n, neighbours, { excludeSelf: rows, onProgress: options.onProgress });
    }
    const groups = groupNeighbours(n, hits, threshold).map((g) => ({
      items: g.rows.map((r) => { const item = this.engine.items[r]; return { id: item.id, metadata: item.metadata, image: item.image }; }),
      minScore: g.minScore,
      maxScore: g.maxScore,
    }));
    return { threshold, space: space.id, items: n, duplicated: groups.reduce((s, g) => s + g.items.length, 0), groups };
  }

  /** Top-k neighbours of every catalog item (itself excluded), batched. */
  async recommendAll(k: number, options: { pooling?: Pooling; mode?: string; onProgress?: (done: number, total: number) => void } = {}) {
    checkK(k);
    const space = this.space(options);
    const { data, dim } = this.engine.matrix(space);
    const n = this.engine.size;
    const self = new Int32Array(n).map((_, i) => i);
    const hits = await batchTopK(data, dim, data, n, k, { excludeSelf: self, onProgress: options.onProgress });
    return { space: space.id, ids: this.engine.items.map((i) => i.id), ...hits };
  }

  async close(): Promise<void> {
    if (this.embedder) await (await this.embedder.catch(() => undefined))?.release();
    await this.engine.close();
    await this.store.close();
  }
}
