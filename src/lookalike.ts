/**
 * The library's front door: an opened index that answers "which products look like
 * this?". The CLI, the HTTP server, evaluation and training all go through it.
 */
import { DEFAULT_K, DEFAULT_THRESHOLD } from './defaults.js';
import { LookalikeError } from './errors.js';
import { Embedder } from './model/embedder.js';
import { imageFingerprint, type EmbeddingSettings, type Pooling } from './model/registry.js';
import { prepareImage } from './image/prepare.js';
import { prepareOptionsFor } from './image/options.js';
import { SqliteStore } from './store/sqlite.js';
import type { IndexManifest, Store } from './store/types.js';
import { SearchEngine, type SearchHit, type SearchOptions } from './search/engine.js';
import { backboneSpace, type EmbeddingSpace, type RawVectors } from './search/space.js';
import { batchTopK } from './search/kernel.js';
import { HeadSpaces } from './head/index-head.js';
import { MODES } from './head/head.js';
import { checkFilterFields } from './search/filters.js';
import { checkChoice, checkK, checkThreshold } from './validate.js';

export interface QueryOptions extends SearchOptions {
  /** Override the index's pooling (both are stored). */
  pooling?: Pooling;
  /** Settings the caller expects; refused when they differ from the index's. */
  expect?: Partial<EmbeddingSettings>;
  /** Which notion of similarity to use, when the index has spaces beyond the backbone. */
  mode?: string;
}

export interface SearchResponse {
  /** `warnings`: damage the decoder worked around in the query photo. */
  query: { kind: 'image' | 'item'; id?: string; label?: string; warnings?: string[] };
  space: string;
  /** The threshold applied: the caller's, else the tuned default, else none. */
  threshold?: number;
  results: SearchHit[];
}

export class Lookalike {
  readonly engine: SearchEngine;
  private embedder?: Promise<Embedder>;
  private headSpaces?: HeadSpaces;

  private constructor(readonly store: Store, readonly manifest: Readonly<IndexManifest>, readonly indexDir: string) {
    this.engine = new SearchEngine(store, manifest.catalog.columns);
  }

  static async open(indexDir: string, options: { readonly?: boolean } = {}): Promise<Lookalike> {
    const store = SqliteStore.open(indexDir, { readonly: options.readonly });
    const manifest = store.getManifest();
    if (!manifest || store.count().embedded === 0) {
      store.close();
      throw new LookalikeError('INDEX_EMPTY', { path: indexDir });
    }
    const lookalike = new Lookalike(store, manifest, indexDir);
    try {
      lookalike.headSpaces = await HeadSpaces.open(indexDir, manifest, store, lookalike.engine);
    } catch (err) {
      store.close();
      throw err;
    }
    return lookalike;
  }

  /** The trained head's spaces, when the index has a head (`lookalike train`). */
  get head(): HeadSpaces | undefined {
    return this.headSpaces;
  }

  get settings(): EmbeddingSettings {
    return this.manifest.settings;
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

  private checkSettings(expect: Partial<EmbeddingSettings> | undefined): void {
    if (!expect) return;
    const wanted = { ...this.settings, ...Object.fromEntries(Object.entries(expect).filter(([, v]) => v !== undefined)) } as EmbeddingSettings;
    if (imageFingerprint(wanted) !== imageFingerprint(this.settings)) {
      throw new LookalikeError('MODEL_MISMATCH', { index: this.indexDir, indexed: imageFingerprint(this.settings), requested: imageFingerprint(wanted) });
    }
  }

  private loadEmbedder(): Promise<Embedder> {
    this.embedder ??= Embedder.create(this.settings.backbone).then((e) => {
      if (e.weightsId !== this.manifest.weightsId) {
        throw new LookalikeError('MODEL_MISMATCH', { index: this.indexDir, indexed: this.manifest.weightsId, requested: e.weightsId });
      }
      return e;
    });
    return this.embedder;
  }

  /** Warms the backbone up so the first query is not slow (server start). */
  async warmUp(): Promise<void> {
    await this.loadEmbedder();
  }

  /** Raw vectors of an image that is not in the catalog, as the index would store them. */
  async embedImage(input: string | Buffer, label?: string, maxPixels?: number): Promise<RawVectors & { warnings: string[] }> {
    const prepared = await prepareImage(input, { ...prepareOptionsFor(this.settings), label, maxPixels });
    const embedder = await this.loadEmbedder();
    const out = await embedder.run(prepared.tensor, 1, this.settings.height, this.settings.width);
    return { n: 1, max: out.max, avg: out.avg, colour: prepared.colour, dim: embedder.dimension, colourDim: prepared.colour.length, warnings: prepared.warnings };
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
    checkThreshold(options.threshold);
    checkFilterFields(options.filters, this.manifest.catalog.columns);
    this.space(options);
    this.checkSettings(options.expect);
  }

  async searchByImage(input: string | Buffer, options: QueryOptions & { label?: string; maxPixels?: number } = {}): Promise<SearchResponse> {
    this.checkQuery(options);
    const raw = await this.embedImage(input, options.label, options.maxPixels);
    const space = this.space(options);
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const results = await this.engine.searchAsync(space, space.embed(raw), { ...options, k: options.k ?? defaults.k, threshold });
    return { query: { kind: 'image', label: options.label, ...(raw.warnings.length && { warnings: raw.warnings }) }, space: space.id, threshold, results };
  }

  searchById(id: string, options: QueryOptions = {}): SearchResponse {
    this.checkQuery(options);
    const space = this.space(options);
    const defaults = this.defaults(space);
    const threshold = options.threshold ?? defaults.threshold;
    const results = this.engine.search(space, this.engine.vectorOf(space, id), { ...options, k: options.k ?? defaults.k, threshold, excludeId: id });
    return { query: { kind: 'item', id }, space: space.id, threshold, results };
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
    this.store.close();
  }
}
