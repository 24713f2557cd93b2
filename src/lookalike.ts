/**
 * The library's front door: an opened index that answers "which products look like
 * this?". The CLI, the HTTP server, evaluation and training all go through it.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { DEFAULT_K, DEFAULT_THRESHOLD, DUPLICATE_NEIGHBOURS, DUPLICATE_THRESHOLD, INDEX_FILES, MAX_K, STYLE_ID_COLUMNS } from './defaults.js';
import { LookalikeError } from './errors.js';
import { Embedder, indexArithmetic, type Arithmetic } from './model/embedder.js';
import { withinRegion, type Localisation, type ProposedRegion, type Region } from './photo/localise.js';
import { DEFAULT_LOCALISATION, photoBatchVectors, type PhotoVectors } from './photo/vectors.js';
import { foregroundRegions, sceneRegions } from './photo/scene.js';
import { PHOTO_ANN_CANDIDATES, searchPhoto } from './photo/search.js';
import { defaultSettings, imageFingerprint, POOLINGS, storedSettings, type EmbeddingSettings, type Pooling } from './model/registry.js';
import { calibrationId } from './model/quantise.js';
import { inspectImage, prepareImage, type ImageSource } from './image/prepare.js';
import { readCatalogPhoto, type CatalogPhoto } from './image/catalog-photo.js';
import { prepareOptionsFor } from './image/options.js';
import { openStore } from './store/open.js';
import { storeCacheDir } from './paths.js';
import { describeLocation, indexArgs } from './store/location.js';
import type { IndexManifest, Store, VectorKind } from './store/types.js';
import { SearchEngine, SEARCH_SETTINGS, type FindOptions, type SearchHit, type SearchMethod, type SearchOptions, type SearchSetting, type SpaceMatrix, type TextHits } from './search/engine.js';
import type { AnnIndex, AnnMeta, SyncReport } from './search/ann.js';
import type { Filters } from './search/filters.js';
import { checkText, TEXT_MODES, type TextMode } from './search/text.js';
import { averageQuery, DEFAULT_RECOMMEND_STRATEGY, MAX_EXAMPLES, RECOMMEND_STRATEGIES, type RecommendStrategy } from './search/recommend.js';
import { backboneSpace, type EmbeddingSpace, type RawVectors } from './search/space.js';
import { batchTopK, normaliseRows } from './search/kernel.js';
import { groupNeighbours, withoutNearDuplicates } from './search/duplicates.js';
import { foldVariants, type Variant } from './search/variants.js';
import { fetchProducts, leadRowsOf, productMetadata, type ProductPhotos } from './search/products.js';
import { HeadSpaces } from './head/index-head.js';
import { MODES } from './head/head.js';
import { checkFilterFields } from './search/filters.js';
import { checkChoice, checkK, checkPositiveInteger, checkRegion, checkThreshold, invalidParameterError, isInteger } from './validate.js';
import { checkCatalogRoot, relocateImage } from './catalog/relocate.js';
import type { StoredItem } from './store/types.js';

/** A list of examples as given by a library caller: each an {id} or an {image}. */
function checkExamples(list: unknown, name: string): Example[] {
  if (!Array.isArray(list)) throw invalidParameterError(name, 'a list of examples ({ id } or { image })', list);
  return list.map((e: unknown) => {
    const ok = typeof e === 'object' && e !== null && (typeof (e as { id?: unknown }).id === 'string' || typeof (e as { image?: unknown }).image === 'string' || Buffer.isBuffer((e as { image?: unknown }).image) || isCheckedPhoto((e as { image?: unknown }).image));
    if (!ok) throw invalidParameterError(`each of ${name}`, 'a catalog item ({ id }) or a photo ({ image: path or bytes })', e);
    return e as Example;
  });
}

export interface QueryOptions extends SearchOptions {
  /** Override the index's pooling (both are stored). */
  pooling?: Pooling;
  /** Settings the caller expects; refused when they differ from the index's. */
  expect?: Partial<EmbeddingSettings>;
  /** Which notion of similarity to use, when the index has spaces beyond the backbone. */
  mode?: string;
  /**
   * Words matched against the catalog's text (product name, attributes) by the store's
   * full-text engine, stemmed, typos corrected (search/text.ts).
   */
  text?: string;
  /** filter (default): only products matching every word; boost: those rank higher. */
  textMode?: TextMode;
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

/** A recommendation's example: a catalog item, or a photo (path or bytes). */
export type Example = { id: string } | { image: string | Buffer | CheckedPhoto; label?: string };

export interface RecommendOptions extends QueryOptions {
  like: readonly Example[];
  unlike?: readonly Example[];
  /** How the examples are combined (search/recommend.ts); default average. */
  strategy?: RecommendStrategy;
  /** For photos: the most pixels decoded (the server's limit). */
  maxPixels?: number;
}

/** One product of a photo, where it is and its own results (shop the look). */
export interface Look {
  box: Region;
  /** Whether its results were searched with their top result's vector as well. */
  expanded: boolean;
  results: SearchHit[];
}

/** How a photo (not a catalog item) is turned into query vectors. */
export interface PhotoOptions {
  /** Only this part of the photo (relative x, y, w, h): the box a shopper drew. */
  crop?: Region;
  /** Pool over the product's cells of the feature map (default: zoom) or over the whole photo. */
  localise?: Localisation;
  /**
   * When the top result stands out, search the rest with its vector added (default true;
   * photo/search.ts expandedQuery). false: the photo's own vector only.
   */
  expand?: boolean;
}

export { DEFAULT_LOCALISATION, photoVectors, type PhotoVectors } from './photo/vectors.js';
/** The formats a photo may be in (sniffed from its bytes, not its name). */
export { ACCEPTED_FORMATS } from './image/prepare.js';
export { POOLINGS } from './model/registry.js';

export interface SearchResponse {
  /** `warnings`: damage the decoder worked around in the query photo. */
  query: {
    kind: 'image' | 'item' | 'text' | 'examples'; id?: string; label?: string; crop?: Region; warnings?: string[];
    /** The words searched, and how they were corrected when some matched nothing. */
    text?: string; corrected?: string; textMode?: TextMode;
    /** Recommendations: the ids of the liked and disliked catalog items, and how many photos. */
    like?: string[]; unlike?: string[]; photos?: number; strategy?: RecommendStrategy;
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
  /**
   * Shop the look: each product of the photo searched on its own, biggest first: the
   * products standing apart on a plain background, else the strong blobs of the backbone's
   * look at the photo's own aspect.
   */
  looks?: Look[];
}

export interface PreparedModel {
  backbone: string;
  precision: string;
  weightsId: string;
  /** int8: the calibration the model was quantised for (the index's). */
  calibration?: string;
  seconds: number;
}

/**
 * `lookalike prepare`: converts the backbone to ONNX in the model cache and, for an int8
 * index, quantises it for the index's calibration, so that a new server or worker starts
 * with its model ready (a container build step, or an init step per machine). Without an
 * index only the float32 conversion is made (an int8 model needs an index's calibration).
 */
export async function prepareModel(options: { location?: string; backbone?: string; log?: (message: string) => void } = {}): Promise<PreparedModel> {
  const started = performance.now();
  let settings = defaultSettings({ ...(options.backbone && { backbone: options.backbone }), precision: 'fp32' });
  let calibration: IndexManifest['calibration'];
  if (options.location) {
    const store = await openStore(options.location, { readonly: true });
    try {
      const manifest = store.getManifest();
      if (!manifest) throw new LookalikeError('INDEX_NOT_FOUND', { path: describeLocation(options.location) });
      settings = storedSettings(manifest.settings);
      calibration = manifest.calibration;
    } finally {
      await store.close();
    }
  }
  const embedder = await Embedder.create(settings.backbone, { precision: settings.precision, calibration, log: options.log });
  try {
    return {
      backbone: settings.backbone, precision: embedder.precision, weightsId: embedder.weightsId,
      ...(calibration && { calibration: calibrationId(calibration) }),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await embedder.release();
  }
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

/** How current a replica's answers are (Lookalike.freshness). */
export interface Freshness {
  /** The generation the answers come from. */
  generation: number;
  /** The newest generation the store has read (ahead of `generation` while a rebuild is pending or failing). */
  storeGeneration: number;
  /** When `generation` was last confirmed to be the database's latest, ms since the epoch. */
  confirmedAt: number;
  /** Seconds since then: how stale the answers may be. */
  lagSeconds: number;
}

/**
 * The lab's door to an opened index (`Lookalike.indexView()`): its items in row order, their
 * vectors in any space, and searches by strategy. Evaluation, tuning, the map, benchmarks and
 * training read the index through it; the server and the CLI use Lookalike's own methods.
 * Options are not checked here (the lab passes its own): a program's searches go through
 * Lookalike's methods, which check them once.
 */
export interface IndexView {
  // --- Items: row r of every matrix is items[r] ---
  /** Embedded items in catalog order. */
  readonly items: readonly StoredItem[];
  /** Products and their photos' rows: a row is a photo, a product may have several (search/products.ts). */
  readonly photos: ProductPhotos;
  readonly size: number;
  /** The store's data generation these rows come from. */
  readonly generation: number;
  has(id: string): boolean;
  /** The row of an item (ITEM_NOT_FOUND when it has none). */
  rowOf(id: string): number;
  /** Value counts per column over the items, under `filters` (each field's own filter applies too). */
  facets(fields?: string[], filters?: Filters): Record<string, Array<{ value: string; count: number }>>;

  // --- Vectors ---
  /** The raw stored vectors (max, avg, colour), loaded per kind on first use. */
  rawVectors(): RawVectors;
  /** Every item's unit vector in `space`, one row each (computed once per space and held). */
  matrix(space: EmbeddingSpace): SpaceMatrix;
  /** An item's row of matrix(space). */
  vectorOf(space: EmbeddingSpace, id: string): Float32Array;
  /** As vectorOf, read from the ANN rows file when searches go through ANN (no matrix built). */
  vectorOfForSearch(space: EmbeddingSpace, id: string, search?: SearchSetting): Promise<Float32Array>;

  // --- Searches ---
  /** The rows whose text holds every term (search/text.ts). */
  textHits(terms: string[]): Promise<TextHits>;
  /** A query vector's hits as Lookalike's searches find them (excluded ids, words as filter or boost). */
  find(space: EmbeddingSpace, query: Float32Array, options?: FindOptions): Promise<SearchHit[]>;
  /** A query vector's hits by the method `options.search` picks (exact, ann or db). */
  query(space: EmbeddingSpace, query: Float32Array, options?: SearchOptions & { excludeId?: string; rowMask?: Uint8Array }): Promise<SearchHit[]>;
  /** Exact, in JavaScript (no onnxruntime): the baseline benchmarks time. */
  search(space: EmbeddingSpace, query: Float32Array, options?: SearchOptions & { excludeId?: string }): SearchHit[];
  /** Through the ANN index, re-ranked exactly. */
  searchAnn(space: EmbeddingSpace, query: Float32Array, options?: SearchOptions & { excludeId?: string; rowMask?: Uint8Array }): Promise<SearchHit[]>;
  /** Through the database (pgvector), backbone:max only. */
  searchDb(space: EmbeddingSpace, query: Float32Array, options?: SearchOptions & { excludeId?: string; text?: string[] }): Promise<SearchHit[]>;
  /** Top-k of catalog rows through the ANN index, each query row excluding itself, among the rows of `mask`. */
  annTopK(space: EmbeddingSpace, queryRows: Int32Array, k: number, mask?: Uint8Array, onProgress?: (done: number, total: number) => void): Promise<{ k: number; rows: Int32Array; scores: Float32Array }>;

  // --- The ANN indexes (benchmarks, `info`, tests) ---
  /** The method a search with `requested` uses: explicit, else the index's setting, else by size. */
  method(requested?: SearchSetting): SearchMethod;
  /** The saved ANN index of a space, described without loading or building it. */
  annStatus(space: EmbeddingSpace): AnnStatus;
  /** Loads (or builds) what ANN searches in `space` go through. */
  prepareAnn(space: EmbeddingSpace): Promise<void>;
  /** Searches in `space` go through `ann`, built elsewhere over these rows (benchmarks). */
  adoptAnn(space: EmbeddingSpace, ann: AnnIndex): void;
  /** What the last ANN build or update did. */
  readonly lastSync?: SyncReport;
  /** The spaces whose float32 matrix is held in memory (none, for a server on current ANN files). */
  heldSpaces(): string[];
}

/** A space's saved ANN index: its file, its description, and whether it matches the store's generation. */
export interface AnnStatus { file?: string; meta?: AnnMeta; current: boolean }

/** How an index searches (`lookalike info`). */
export interface SearchStatus {
  /** The index's setting (`lookalike index --search`). */
  setting: SearchSetting;
  /** The method searches use in this process. */
  method: SearchMethod;
  /** The space searches use by default. */
  space: string;
  /** Its saved ANN index, when there is one. */
  ann?: { file?: string; upToDate: boolean; recallAt10?: number; recallQueries?: number; settings?: AnnMeta['settings'] };
}

/**
 * A photo whose header was checked at the door (`Lookalike.checkPhoto`): format sniffed from
 * its bytes, pixels within the limit. Searched, it is not read for that again.
 */
export interface CheckedPhoto {
  readonly input: string | Buffer;
  /** Its name in error messages ("the upload", a path). */
  readonly label: string;
  readonly maxPixels?: number;
  readonly source: ImageSource;
}

/** Photos checkPhoto handed out: only those skip the second look at their header. */
const checkedPhotos = new WeakSet<CheckedPhoto>();

function isCheckedPhoto(input: unknown): input is CheckedPhoto {
  return typeof input === 'object' && input !== null && checkedPhotos.has(input as CheckedPhoto);
}

/** The stored 2-D map (`lookalike map`, GET /api/map), as `Lookalike.storedMap` finds it. */
export interface StoredMap {
  /** Changes when the map is rewritten (a file's mtime, or a shared store's bytes). */
  version: number | Buffer;
  /** Where it is, for a person: its file, or its name in a shared store. */
  where: string;
  read(): Promise<Buffer>;
}

/** What `lookalike tune --apply` stores under manifest.extensions.tuned (read by `Lookalike.defaults()`). */
export interface TunedDefaults {
  pooling: Pooling;
  k: number;
  threshold?: number;
  /** The space the threshold is a cosine in, e.g. "backbone:max". */
  space: string;
  attribute: string;
  targetPrecision: number;
  tunedAt: string;
}

interface Current { engine: SearchEngine; manifest: Readonly<IndexManifest>; head?: HeadSpaces; confirmedAt?: number }

export class Lookalike {
  private current: Current;
  private embedder?: Promise<Embedder>;

  /** This machine's copy of the catalog, when it is not where the indexer read it (`--catalog-root`). */
  private catalogRootDir?: string;

  private constructor(private readonly store: Store, readonly indexDir: string, private readonly readonly = false, private readonly search?: SearchSetting) {
    this.current = this.build(store.getManifest()!);
  }

  /** An engine over the store as it is now. */
  private build(manifest: IndexManifest): Current {
    // The ANN index is kept beside index.sqlite (a read-only open loads it but never writes);
    // a shared store has no folder, so each replica keeps it in its own cache, where the next
    // start (and the next change, incrementally) picks it up instead of rebuilding it.
    const annDir = this.store.folder ?? storeCacheDir(this.store.location);
    const engine = new SearchEngine(this.store, manifest.catalog.columns, { annDir, persist: !this.readonly || !this.store.folder, search: this.search ?? searchSettingOf(manifest) });
    // A shared store swaps its matrices on refresh: this engine takes its rows now, so that
    // they always match its items, whatever the store holds later.
    if (this.store.refresh) engine.pin(kindsFor(manifest));
    return { engine, manifest, confirmedAt: this.store.confirmedAt?.(engine.generation) };
  }

  /**
   * `location`: an index folder, or a PostgreSQL location (store/location.ts). `search`
   * overrides the index's search setting for this process (`serve --search`): auto, exact
   * or ann; a search's own `search` option still comes first. `catalogRoot`: where this
   * machine has the catalog, when not at the path the indexer read it from (catalog/relocate.ts).
   */
  static async open(indexDir: string, options: { readonly?: boolean; search?: SearchSetting; catalogRoot?: string } = {}): Promise<Lookalike> {
    checkChoice(options.search, 'search', SEARCH_SETTINGS);
    const catalogRoot = checkCatalogRoot(options.catalogRoot);
    const store = await openStore(indexDir, { readonly: options.readonly });
    try {
      const manifest = store.getManifest();
      if (!manifest || store.count().embedded === 0) throw new LookalikeError('INDEX_EMPTY', { path: describeLocation(indexDir), args: indexArgs(indexDir) });
      await store.preload?.(kindsFor(manifest));
      const lookalike = new Lookalike(store, indexDir, options.readonly, options.search);
      lookalike.catalogRootDir = catalogRoot;
      lookalike.current.head = await HeadSpaces.open(manifest, store, lookalike.engine);
      return lookalike;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** The engine answering now (replaced by a rebuild). */
  private get engine(): SearchEngine {
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
   * The index's rows, vectors and search strategies, for the lab (evaluation, tuning, the
   * map, benchmarks, training): see IndexView. The view is of the engine answering now; a
   * rebuild (a replica following its store) answers from a new one.
   */
  indexView(): IndexView {
    return this.engine;
  }

  // --- The catalog -------------------------------------------------------------------------

  /** Embedded products the answers come from (`/api/health`, metrics). */
  get size(): number {
    return this.engine.size;
  }

  /** Whether the index has an embedded product with this id. */
  has(id: string): boolean {
    return this.engine.has(id);
  }

  /** The embedded product with this id, else ITEM_NOT_FOUND. */
  item(id: string): StoredItem {
    return this.engine.items[this.engine.rowOf(id)];
  }

  /** Products passing the filters, in catalog order, `limit` of them from `offset`, and how many pass. */
  list(filters: Filters | undefined, offset = 0, limit = Number.MAX_SAFE_INTEGER): { total: number; items: StoredItem[] } {
    checkFilterFields(filters, this.manifest.catalog.columns);
    if (!isInteger(offset) || offset < 0) throw invalidParameterError('offset', 'a whole number of at least 0', offset);
    if (!isInteger(limit) || limit < 0) throw invalidParameterError('limit', 'a whole number of at least 0', limit);
    return this.engine.list(filters, offset, limit);
  }

  /** How many products pass the filters. */
  count(filters?: Filters): number {
    return this.list(filters, 0, 0).total;
  }

  /**
   * For each field (default: every column), its values and how many products have them,
   * most common first. A field's counts apply every other filter but not its own, so they
   * tell what picking that value would give (the page's filters).
   */
  facets(fields: readonly string[] = this.manifest.catalog.columns, filters: Filters = {}): Record<string, Array<{ value: string; count: number }>> {
    checkFilterFields(filters, this.manifest.catalog.columns);
    const out: Record<string, Array<{ value: string; count: number }>> = {};
    for (const field of fields) {
      const others = Object.fromEntries(Object.entries(filters).filter(([f]) => f !== field));
      out[field] = this.engine.facets([field], others)[field];
    }
    return out;
  }

  // --- Files kept with the index -------------------------------------------------------------

  /** The index folder on this machine; undefined for a shared store (PostgreSQL), which has none. */
  get folder(): string | undefined {
    return this.store.folder;
  }

  /**
   * The stored 2-D map, undefined when none was made. A folder index's map is a file another
   * process rewrites at any time (its version is its mtime); a shared store's is in the
   * snapshot, which a replica keeps current.
   */
  async storedMap(): Promise<StoredMap | undefined> {
    const name = INDEX_FILES.map;
    const folder = this.store.folder;
    if (folder) {
      const file = path.join(folder, name);
      const info = await stat(file).catch(() => undefined);
      return info?.isFile() ? { version: info.mtimeMs, where: file, read: () => readFile(file) } : undefined;
    }
    const bytes = this.store.getFile(name);
    return bytes ? { version: bytes, where: name, read: async () => bytes } : undefined;
  }

  /** Stores the 2-D map (JSON) with the index; returns where, for a person. */
  async saveMap(json: string): Promise<string> {
    const name = INDEX_FILES.map;
    await this.store.putFile(name, Buffer.from(json));
    return this.store.folder ? path.join(this.store.folder, name) : `${name} in ${describeLocation(this.store.location)}`;
  }

  /**
   * Stores the search defaults `lookalike tune --apply` chose: the default pooling
   * (manifest.settings.pooling) and k and threshold (manifest.extensions.tuned, read by
   * `defaults()`). This index answers with them from now on, too.
   */
  async saveTuning(tuned: TunedDefaults): Promise<void> {
    checkK(tuned.k);
    checkChoice(tuned.pooling, 'pooling', POOLINGS);
    checkThreshold(tuned.threshold);
    const manifest = this.store.getManifest();
    if (!manifest) throw new Error('index has no manifest');
    const updated = {
      ...manifest,
      settings: { ...manifest.settings, pooling: tuned.pooling },
      extensions: { ...(manifest.extensions ?? {}), tuned },
      updatedAt: new Date().toISOString(),
    };
    await this.store.setManifest(updated);
    Object.assign(this.current.manifest, updated);
  }

  // --- How it searches -----------------------------------------------------------------------

  /** The index's search setting, the method searches use and its ANN index (`lookalike info`). */
  searchStatus(): SearchStatus {
    const space = this.space();
    const ann = this.engine.annStatus(space);
    return {
      setting: searchSettingOf(this.manifest),
      method: this.engine.method(),
      space: space.id,
      ann: ann.meta && { file: ann.file, upToDate: ann.current, recallAt10: ann.meta.recallAt10, recallQueries: ann.meta.recallQueries, settings: ann.meta.settings },
    };
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

  /**
   * A replica of a shared store follows it: `onChange` is called when another process
   * changed it (notified, or found by a poll), `onError` when a check fails. Returns how to
   * stop, or undefined for a folder index, which is read directly and has nothing to follow.
   */
  follow(onChange: () => void, onError: (err: unknown) => void): (() => Promise<void>) | undefined {
    return this.store.follow?.(onChange, onError);
  }

  /** Whether searches may be answered by the database (`search: 'db'`): an index in PostgreSQL with pgvector. */
  get databaseSearch(): boolean {
    return this.store.canSearch === true;
  }

  /** Whether the index is a shared store this process can follow (`follow`): a replica. */
  get followsStore(): boolean {
    return this.store.follow !== undefined;
  }

  /** Rebuilds the engine when the store has read a newer generation than the answers come from (after `follow`'s onChange). */
  async catchUp(): Promise<boolean> {
    if (this.store.generation() === this.generation) return false;
    return this.rebuild();
  }

  /** Rebuilds the engine over the store's current snapshot (after `store.refresh`). */
  async rebuild(): Promise<boolean> {
    const manifest = this.store.getManifest();
    if (!manifest || this.store.count().embedded === 0) return false;
    await this.store.preload?.(kindsFor(manifest));
    const next = this.build(manifest);
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

  /**
   * How current the answers are, for a replica of a shared store (undefined for a folder
   * index, which is read directly). The answers' generation was last confirmed the latest
   * either by the store's last check (when it is still the store's generation) or, once the
   * store has moved on and the rebuild is pending or failing, by the last check before that.
   */
  freshness(now = Date.now()): Freshness | undefined {
    if (!this.store.confirmedAt) return undefined;
    const current = this.current;
    const at = this.store.confirmedAt(current.engine.generation);
    if (at !== undefined) current.confirmedAt = Math.max(current.confirmedAt ?? 0, at);
    const confirmedAt = current.confirmedAt ?? 0;
    return { generation: current.engine.generation, storeGeneration: this.store.generation(), confirmedAt, lagSeconds: Math.max(0, (now - confirmedAt) / 1000) };
  }

  /** The catalog folder as this machine sees it: its own root, else the one the index was made from. */
  catalogRoot(): string {
    return this.catalogRootDir ?? this.manifest.catalog.root;
  }

  /** Where this machine reads an item's image (a file under catalogRoot(), or a URL). */
  imageOf(item: StoredItem): string {
    return relocateImage(item.image, this.manifest.catalog.root, this.catalogRootDir);
  }

  /**
   * The photo of a catalog item, read from this machine's catalog folder and checked (it
   * must still be a photo inside the folder: image/catalog-photo.ts). Only an id is asked
   * for: the path comes from the index.
   */
  async catalogPhoto(id: string, photo?: number): Promise<CatalogPhoto> {
    const file = this.imageOf(photo ? this.photoOf(id, photo) : this.item(id));
    return readCatalogPhoto(id, file, await this.catalogFolder());
  }

  /** The catalog folder's real path, for the manifest now in force (a replica may follow a re-index from another folder). */
  private catalogFolderCache?: { dir: string; real: Promise<string | undefined> };

  private catalogFolder(): Promise<string | undefined> {
    const dir = this.catalogRoot();
    let cached = this.catalogFolderCache;
    if (cached?.dir !== dir) {
      const fresh = { dir, real: realpath(dir).catch(() => undefined) };
      this.catalogFolderCache = cached = fresh;
      // A folder missing now may be mounted later: looked up again on the next request.
      void fresh.real.then((r) => { if (r === undefined && this.catalogFolderCache === fresh) this.catalogFolderCache = undefined; });
    }
    return cached.real;
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
    checkChoice(options.pooling, 'pooling', POOLINGS);
    if (this.head && !options.pooling) return this.head.space(options.mode);
    return backboneSpace(options.pooling ?? this.settings.pooling, this.manifest.dimension);
  }

  /**
   * The space a photo is searched in: as `space`, except that a head's space is blended with
   * the plain backbone (photo/search.ts PHOTO_BLEND), which keeps shopper photos found.
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
   * Runs the backbone once on a blank photo, so that the first search does not pay for
   * onnxruntime's first run (server start, through the inference queue).
   */
  async warmUpModel(): Promise<void> {
    const blank = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#ffffff' } }).png().toBuffer();
    await this.embedImage(blank, 'warm-up');
  }

  /**
   * Checks a photo's header before any work: its format sniffed from the bytes (JPEG, PNG
   * or WebP) and its pixels within `maxPixels`; else IMAGE_UNSUPPORTED, IMAGE_TOO_LARGE, ...
   * A server checks an upload so before it waits for the backbone; searched, the checked
   * photo is not read for that again.
   */
  async checkPhoto(input: string | Buffer, options: { label: string; maxPixels?: number }): Promise<CheckedPhoto> {
    const source = await inspectImage(input, options.label, options.maxPixels);
    const photo: CheckedPhoto = Object.freeze({ input, label: options.label, maxPixels: options.maxPixels, source });
    checkedPhotos.add(photo);
    return photo;
  }

  /** A photo as given (its label and limit from the options), or as checked by checkPhoto (its own). */
  private static photoOf(image: string | Buffer | CheckedPhoto, label: string | undefined, maxPixels: number | undefined): { input: string | Buffer; label?: string; maxPixels?: number; source?: ImageSource } {
    if (typeof image === 'object' && checkedPhotos.has(image as CheckedPhoto)) return image as CheckedPhoto;
    // Shaped like one but not from checkPhoto: its header is read as any photo's.
    if (typeof image === 'object' && !Buffer.isBuffer(image)) return { input: image.input, label: image.label, maxPixels: image.maxPixels };
    return { input: image, label, maxPixels };
  }

  /**
   * Raw vectors of an image that is not in the catalog. With `localise: 'none'` they are
   * what the index would store for it; by default they describe the product found in it.
   */
  async embedImage(image: string | Buffer | CheckedPhoto, label?: string, maxPixels?: number, photo: PhotoOptions = {}): Promise<PhotoVectors & { warnings: string[]; products: Region[]; aspect: number }> {
    if (photo.crop !== undefined) photo = { ...photo, crop: checkRegion(photo.crop) };
    const given = Lookalike.photoOf(image, label, maxPixels);
    const prepared = await prepareImage(given.input, { ...prepareOptionsFor(this.settings), label: given.label, maxPixels: given.maxPixels, crop: photo.crop, source: given.source });
    const embedder = await this.loadEmbedder();
    const [vectors] = await photoBatchVectors(embedder, this.settings, [{ input: given.input, prepared, crop: photo.crop, label: given.label, maxPixels: given.maxPixels }], photo.localise ?? DEFAULT_LOCALISATION);
    // Products apart on a plain background (photo/scene.ts foregroundRegions), relative to the (cropped) photo.
    const products = foregroundRegions(prepared.rgb, this.settings.width, this.settings.height);
    // Width over height of the part looked at (the shopper's box, or the whole photo).
    const aspect = (prepared.source.width * (photo.crop?.w ?? 1)) / Math.max(1, prepared.source.height * (photo.crop?.h ?? 1));
    return { ...vectors, warnings: prepared.warnings, products, aspect };
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
    checkText(options.text);
    checkChoice(options.textMode, 'textMode', TEXT_MODES);
    if (options.dedupe !== undefined && typeof options.dedupe !== 'boolean') throw invalidParameterError('dedupe', 'true or false', options.dedupe);
    if (options.group !== undefined && (typeof options.group !== 'string' || (options.group.toLowerCase() !== 'style' && !this.groupColumn(options.group)))) {
      throw invalidParameterError('group', `"style" or one of the catalog's columns (${this.manifest.catalog.columns.join(', ')})`, options.group);
    }
    this.space(options);
    this.checkSettings(options.expect);
  }

  /** The rows matching a search's words, when it has any. */
  private async textOf(options: QueryOptions): Promise<TextHits | undefined> {
    const terms = checkText(options.text);
    return terms && this.engine.textHits(terms);
  }

  /** What a response says of a search's words. */
  private static textQuery(options: QueryOptions, text: TextHits | undefined) {
    return text ? { text: options.text, textMode: options.textMode ?? 'filter', ...(text.corrected && { corrected: text.corrected }) } : {};
  }

  /**
   * A photo's query vector searched (photo/search.ts searchPhoto): when its top result
   * stands out, the rest with that product's vector added; the threshold applies to the list.
   */
  private async searchPhotoQuery(space: EmbeddingSpace, query: Float32Array, options: QueryOptions & PhotoOptions, k: number, threshold: number | undefined, text: TextHits | undefined): Promise<{ results: SearchHit[]; expanded: boolean; groupedBy?: string }> {
    const search = { candidates: PHOTO_ANN_CANDIDATES, ...options, text, textMode: options.textMode };
    const { fetch, expanded } = await searchPhoto(query, { k, threshold, expand: options.expand !== false, words: !!text }, {
      look: (q, want) => this.products((rows) => this.engine.find(space, q, { ...search, text: undefined, threshold: undefined, k: rows }))(want),
      find: (q, want) => this.products((rows) => this.engine.find(space, q, { ...search, threshold: undefined, k: rows }))(want),
      // The photo of the top product that matched (its first, for a product with one).
      vectorOf: (hit) => this.engine.vectorOfForSearch(space, this.photoRowId(hit), options.search),
    });
    const { results, groupedBy } = await this.finish(k, options, fetch);
    return { results, expanded, groupedBy };
  }

  /**
   * Products that look like a photo. `shopTheLook`: besides the whole photo's results, each
   * product found in it (up to 4) is searched on its own, all in one backbone batch.
   */
  async searchByImage(image: string | Buffer | CheckedPhoto, options: QueryOptions & PhotoOptions & { label?: string; maxPixels?: number; shopTheLook?: boolean } = {}): Promise<SearchResponse> {
    this.checkQuery(options);
    // The crop is checked here, before the photo is decoded (BAD_CROP, whoever sent it).
    if (options.crop !== undefined) options = { ...options, crop: checkRegion(options.crop) };
    // A checked photo brings its own label and limit.
    const { input, label, maxPixels } = Lookalike.photoOf(image, options.label, options.maxPixels);
    options = { ...options, label, maxPixels };
    const text = await this.textOf(options);
    const raw = await this.embedImage(image, options.label, options.maxPixels, { crop: options.crop, localise: options.localise });
    const space = this.photoSpace(options);
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const k = options.k ?? defaults.k;
    const { results, expanded, groupedBy } = await this.searchPhotoQuery(space, space.embed(raw), options, k, threshold, text);
    // Found inside the shopper's box: given in the whole photo's coordinates.
    const regions = options.crop ? raw.regions.map((r) => ({ ...withinRegion(options.crop, r), score: r.score })) : raw.regions;
    // One look per product (photo/scene.ts): apart on a plain background where the photo
    // has one, else the strong blobs of a look at the photo's own aspect.
    let looks: Look[] | undefined;
    if (options.shopTheLook) {
      const products = raw.products.length
        ? raw.products
        : await sceneRegions(await this.loadEmbedder(), this.settings, { input, crop: options.crop, label: options.label, maxPixels: options.maxPixels }, raw.aspect);
      looks = await this.searchRegions(input, products.map((r) => withinRegion(options.crop, r)), space, options, k, threshold, text);
    }
    return {
      query: { kind: 'image', label: options.label, crop: options.crop, ...(raw.zoom && { zoom: raw.zoom }), expanded, ...(raw.warnings.length && { warnings: raw.warnings }), ...Lookalike.textQuery(options, text), ...(groupedBy && { groupedBy }) },
      space: space.id, threshold, results, regions, ...(looks && { looks }),
    };
  }

  /** Each region of a photo searched as if the shopper had drawn it (shop the look). */
  private async searchRegions(input: string | Buffer, regions: readonly Region[], space: EmbeddingSpace, options: QueryOptions & PhotoOptions & { label?: string; maxPixels?: number }, k: number, threshold: number | undefined, text: TextHits | undefined): Promise<Look[]> {
    if (!regions.length) return [];
    const boxes = regions.map((r) => ({ x: r.x, y: r.y, w: r.w, h: r.h }));
    const prep = prepareOptionsFor(this.settings);
    const photos = await Promise.all(boxes.map(async (crop) => ({
      input, crop, label: options.label, maxPixels: options.maxPixels,
      prepared: await prepareImage(input, { ...prep, label: options.label, maxPixels: options.maxPixels, crop }),
    })));
    const vectors = await photoBatchVectors(await this.loadEmbedder(), this.settings, photos, options.localise ?? DEFAULT_LOCALISATION);
    const looks: Look[] = [];
    for (const [i, raw] of vectors.entries()) {
      const { results, expanded } = await this.searchPhotoQuery(space, space.embed(raw), options, k, threshold, text);
      looks.push({ box: boxes[i], expanded, results });
    }
    return looks;
  }

  /** More like this: the same fast path as a photo query, the item itself excluded. */
  async searchById(id: string, options: QueryOptions = {}): Promise<SearchResponse> {
    this.checkQuery(options);
    const text = await this.textOf(options);
    const space = this.space(options);
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const query = await this.engine.vectorOfForSearch(space, id, options.search);
    const { results, ofQuery, variantsOfQuery, groupedBy } = await this.finish(options.k ?? defaults.k, options, this.products((want) => this.engine.find(space, query, { ...options, k: want, threshold, excludeIds: [id], text }), [id]), id);
    return {
      query: { kind: 'item', id, ...Lookalike.textQuery(options, text), ...(ofQuery.length && { duplicates: ofQuery }), ...(variantsOfQuery.length && { variants: variantsOfQuery }), ...(groupedBy && { groupedBy }) },
      space: space.id, threshold, results,
    };
  }

  /**
   * Words alone: the catalog's products matching every word, best text match first (score:
   * relevance relative to the best match, 1). Filters and k apply; no threshold (no cosine).
   */
  async searchText(text: string, options: Pick<QueryOptions, 'k' | 'filters'> = {}): Promise<SearchResponse> {
    if (options.k !== undefined) checkK(options.k);
    checkFilterFields(options.filters, this.manifest.catalog.columns);
    const hits = await this.textOf({ text });
    const results = (await this.products(async (want) => this.engine.textResults(hits!, { k: want, filters: options.filters }))(options.k ?? this.defaults().k)).map((h, i) => ({ ...h, rank: i + 1 }));
    return { query: { kind: 'text', ...Lookalike.textQuery({ text }, hits) }, space: 'text', results };
  }

  /**
   * Products like the liked examples and unlike the disliked ones (catalog items and/or
   * photos), with a search's k, threshold, filters, mode and words. Examples never come
   * back. Photos are embedded in one batch; with any photo the photo space is searched
   * (items' vectors in it too), else the items' space.
   */
  async recommend(options: RecommendOptions): Promise<SearchResponse> {
    this.checkQuery(options);
    const strategy = (checkChoice(options.strategy, 'strategy', RECOMMEND_STRATEGIES) ?? DEFAULT_RECOMMEND_STRATEGY) as RecommendStrategy;
    const like = checkExamples(options.like, 'like'), unlike = checkExamples(options.unlike ?? [], 'unlike');
    if (!like.length) throw new LookalikeError('NO_LIKED_EXAMPLE', {});
    if (like.length + unlike.length > MAX_EXAMPLES) throw invalidParameterError('like and unlike', `at most ${MAX_EXAMPLES} examples together`, like.length + unlike.length);
    const ids = [...like, ...unlike].flatMap((e) => ('id' in e ? [e.id] : []));
    for (const id of ids) this.engine.rowOf(id);
    const text = await this.textOf(options);
    const photos = [...like, ...unlike].filter((e): e is { image: string | Buffer | CheckedPhoto; label?: string } => 'image' in e).map((e) => Lookalike.photoOf(e.image, e.label, options.maxPixels));
    const space = photos.length ? this.photoSpace(options) : this.space(options);
    const prep = prepareOptionsFor(this.settings);
    const prepared = await Promise.all(photos.map(async (p) => ({ input: p.input, label: p.label, maxPixels: p.maxPixels, prepared: await prepareImage(p.input, { ...prep, label: p.label, maxPixels: p.maxPixels, source: p.source }) })));
    const photoVectors = prepared.length ? await photoBatchVectors(await this.loadEmbedder(), this.settings, prepared, DEFAULT_LOCALISATION) : [];
    let photoAt = 0;
    const vectorOf = async (e: Example) => ('id' in e ? Float32Array.from(await this.engine.vectorOfForSearch(space, e.id, options.search)) : space.embed(photoVectors[photoAt++]));
    const liked: Float32Array[] = [], disliked: Float32Array[] = [];
    for (const e of like) liked.push(await vectorOf(e));
    for (const e of unlike) disliked.push(await vectorOf(e));
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const find = this.products((want: number) => {
      const opts = { ...options, k: want, threshold, excludeIds: ids, text };
      return strategy === 'average' ? this.engine.find(space, averageQuery(liked, disliked), opts) : this.engine.findByExamples(space, liked, disliked, strategy, opts);
    }, ids);
    const { results, groupedBy } = await this.finish(options.k ?? defaults.k, options, find);
    const idsOf = (list: readonly Example[]) => list.flatMap((e) => ('id' in e ? [e.id] : []));
    return {
      query: { kind: 'examples', like: idsOf(like), unlike: idsOf(unlike), photos: photos.length, strategy, ...Lookalike.textQuery(options, text), ...(groupedBy && { groupedBy }) },
      space: space.id, threshold, results,
    };
  }

  // ---- Several photos per product (search/products.ts) ----

  /** The index's products and their photos (each photo is a row of the engine). */
  get photos(): ProductPhotos {
    return this.engine.photos;
  }

  /**
   * A search over photo rows (`fetch(rows)`: the best rows) as one over products: each
   * product once, at its best photo. `excluded`: products never returned (the query's own).
   * An index with one photo per product searches as it always did.
   */
  private products(fetch: (want: number) => Promise<SearchHit[]>, excluded?: readonly string[]): (want: number) => Promise<SearchHit[]> {
    const { engine } = this.current;
    const photos = engine.photos;
    if (!photos.multi) return fetch;
    const rowOf = (id: string) => (engine.has(id) ? engine.rowOf(id) : undefined);
    return (want) => fetchProducts(photos, rowOf, Math.min(engine.size, MAX_K), want, fetch, excluded && new Set(excluded));
  }

  /** The stored row behind a result: the photo it matched. */
  private photoRowId(hit: SearchHit): string {
    return hit.photo ? this.photos.photoId(hit.id, hit.photo.index) ?? hit.id : hit.id;
  }

  /** Photo `index` (0: the first) of a product, as stored; ITEM_NOT_FOUND when it has no such photo. */
  photoOf(productId: string, index = 0): StoredItem {
    const id = this.photos.photoId(productId, index);
    if (id === undefined) {
      if (index !== 0) this.engine.rowOf(productId);
      throw new LookalikeError('ITEM_NOT_FOUND', { id: index === 0 ? productId : `${productId} photo ${index}` });
    }
    return this.engine.items[this.engine.rowOf(id)];
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
    if (!options.dedupe && !column) return { results: (await fetch(k)).slice(0, k).map((hit, i) => ({ ...hit, rank: i + 1 })), ofQuery: [], variantsOfQuery: [] };
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
    // Several photos per product: products compared by their first photos (search/products.ts).
    if (this.photos.multi) return this.duplicatesOf(leadRowsOf(this.photos, this.engine.matrix(space).data, space.dim), space, threshold, neighbours, options.onProgress);
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

  /** Duplicates among some rows only (`lead.rows`, their vectors `lead.data`), exactly. */
  private async duplicatesOf(lead: { rows: Int32Array; data: Float32Array }, space: EmbeddingSpace, threshold: number, neighbours: number, onProgress?: (done: number, total: number) => void): Promise<DuplicatesReport> {
    const m = lead.rows.length;
    const hits = await batchTopK(lead.data, space.dim, lead.data, m, neighbours, { excludeSelf: Int32Array.from({ length: m }, (_, i) => i), onProgress });
    const groups = groupNeighbours(m, hits, threshold).map((g) => ({
      items: g.rows.map((r) => { const item = this.engine.items[lead.rows[r]]; return { id: this.photos.productOfRow(lead.rows[r]).id, metadata: productMetadata(item.metadata), image: item.image }; }),
      minScore: g.minScore,
      maxScore: g.maxScore,
    }));
    return { threshold, space: space.id, items: m, duplicated: groups.reduce((s, g) => s + g.items.length, 0), groups };
  }

  /** Top-k neighbours of every catalog item (itself excluded), batched. */
  async recommendAll(k: number, options: { pooling?: Pooling; mode?: string; onProgress?: (done: number, total: number) => void } = {}) {
    checkK(k);
    const space = this.space(options);
    const matrix = this.engine.matrix(space);
    const dim = matrix.dim;
    // Several photos per product: one row per product, its first photo (search/products.ts).
    const lead = this.photos.multi ? leadRowsOf(this.photos, matrix.data, dim) : undefined;
    const data = lead?.data ?? matrix.data;
    const n = lead?.rows.length ?? this.engine.size;
    const self = new Int32Array(n).map((_, i) => i);
    const hits = await batchTopK(data, dim, data, n, k, { excludeSelf: self, onProgress: options.onProgress });
    const ids = lead ? Array.from(lead.rows, (r) => this.photos.productOfRow(r).id) : this.engine.items.map((i) => i.id);
    return { space: space.id, ids, ...hits };
  }

  async close(): Promise<void> {
    if (this.embedder) await (await this.embedder.catch(() => undefined))?.release();
    await this.engine.close();
    await this.store.close();
  }
}
