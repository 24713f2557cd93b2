/**
 * The store keeps an index's items, their metadata and their raw backbone vectors.
 * SQLite (store/sqlite.ts) is the embedded default; PostgreSQL (store/postgres.ts) is the
 * shared one. Reads are synchronous: SQLite answers from its file, PostgreSQL from a
 * snapshot it holds in memory (loaded at open, brought up to date by `refresh`). Writes may
 * be asynchronous (a network round trip); callers always await them.
 */
import type { EmbeddingSettings } from '../model/registry.js';
import type { Calibration } from '../model/quantise.js';

export interface IndexManifest {
  /** Bumped when the on-disk layout changes. */
  formatVersion: number;
  settings: EmbeddingSettings;
  /** Identifies the exact backbone weights, e.g. "resnet50-imagenet@11e0ca5744e3". */
  weightsId: string;
  dimension: number;
  colourDimension: number;
  /**
   * int8 indexes: the activation ranges the backbone was quantised with. Every process
   * that embeds for this index (queries, the server, workers) derives the same int8 model
   * from it and the weights (model/onnx-cache.ts).
   */
  calibration?: Calibration;
  catalog: { root: string; kind: 'styles-csv' | 'image-folder'; columns: string[] };
  createdAt: string;
  updatedAt: string;
  /** Extra, owned by later stages (e.g. the trained head, tuned defaults). */
  extensions?: Record<string, unknown>;
}

export interface StoredItem {
  id: string;
  /** Absolute path of the image file. */
  image: string;
  metadata: Record<string, string>;
}

export interface ItemVectors {
  id: string;
  max: Float32Array;
  avg: Float32Array;
  colour: Float32Array;
  /** The image the vectors were computed from (absent in indexes written before it was kept). */
  source?: ImageSource;
}

/**
 * What identifies the image behind an item's vectors, so that a rerun re-embeds exactly the
 * images that changed: the bytes' hash decides; the stamp is what can be checked without
 * reading them (a file's size and modification time, a URL's ETag or Last-Modified).
 */
export interface ImageSource {
  /** sha256 of the image bytes, hex. */
  hash: string;
  /** `file:SIZE:MTIME_MS`, `etag:"…"`, `modified:DATE`; absent when the server sent neither. */
  stamp?: string;
}

export interface ItemFailure { id: string; reason: string }

export type VectorKind = 'max' | 'avg' | 'colour';

/** Rows are in a stable order (insertion order); `ids[r]` is the item of row r. */
export interface VectorMatrix { ids: string[]; data: Float32Array; dim: number }

export interface Store {
  /** The folder or the PostgreSQL location (store/location.ts) it was opened from. */
  readonly location: string;
  /**
   * The index folder, when the store lives in one (SQLite): derived, rebuildable files (ANN
   * indexes, flat caches) are kept there. Undefined for a shared store, whose replicas keep
   * nothing on disk and build them in memory.
   */
  readonly folder?: string;
  getManifest(): IndexManifest | undefined;
  setManifest(manifest: IndexManifest): void | Promise<void>;
  /** Inserts or refreshes items' image path and metadata (vectors untouched). */
  upsertItems(items: StoredItem[]): void | Promise<void>;
  deleteItems(ids: string[]): void | Promise<void>;
  /**
   * Stores vectors (upserted by id, with their image's hash and stamp) and clears any
   * earlier failure of those items, atomically.
   */
  putVectors(batch: ItemVectors[], failures?: ItemFailure[]): void | Promise<void>;
  /** The image sources of the embedded items that have one (read on demand: only indexing needs them). */
  imageSources(): Map<string, ImageSource> | Promise<Map<string, ImageSource>>;
  /** New stamps for images whose bytes were found unchanged (a file touched or copied). */
  updateStamps(stamps: Array<{ id: string; stamp: string }>): void | Promise<void>;
  /** A named blob stored with the index (the head, the map), or undefined. */
  getFile(name: string): Buffer | undefined;
  putFile(name: string, bytes: Buffer): void | Promise<void>;
  deleteFile(name: string): void | Promise<void>;
  /**
   * Makes `loadMatrix(kind)` answerable for these kinds. A network store reads the vectors
   * here (in bulk); a file store needs nothing.
   */
  preload?(kinds: VectorKind[]): Promise<void>;
  /**
   * Top-k by cosine answered by the database itself (pgvector, HNSW) over the normalised
   * max-pooled vectors. Only where `canSearch` is true (PostgreSQL with the vector extension).
   */
  searchVectors?(query: Float32Array, options: DbSearchOptions): Promise<Array<{ id: string; score: number }>>;
  readonly canSearch?: boolean;
  /**
   * When `generation` was last confirmed to be the database's latest (ms since the epoch,
   * taken before the read that confirmed it), for the snapshot's generation and the one
   * before it; undefined for others. A replica's staleness (readiness, metrics) is measured
   * from it. Only shared stores have it.
   */
  confirmedAt?(generation: number): number | undefined;
  /**
   * Items whose text (product name, attribute values) holds every term, as the store's
   * full-text engine stems them (SQLite FTS5, PostgreSQL text search), most relevant first.
   */
  searchText?(terms: string[]): TextMatch[] | Promise<TextMatch[]>;
  /** Catches up with other writers; true when the data changed. Only shared stores have it. */
  refresh?(): Promise<boolean>;
  /**
   * Calls `onChange` (after a `refresh` that found changes) whenever another process changes
   * the index; returns how to stop. Only shared stores have it.
   */
  follow?(onChange: () => void, onError?: (err: unknown) => void): () => Promise<void>;
  listItems(): StoredItem[];
  getItem(id: string): StoredItem | undefined;
  embeddedIds(): Set<string>;
  failures(): ItemFailure[];
  count(): { items: number; embedded: number; failed: number };
  /** All embedded vectors of one kind as one contiguous matrix. */
  loadMatrix(kind: VectorKind): VectorMatrix;
  /** Changes whenever items or vectors change; caches key on it. */
  generation(): number;
  close(): void | Promise<void>;
}

/** A full-text match: an item and its relevance (higher is better; the scale is the engine's). */
export interface TextMatch { id: string; score: number }

export interface DbSearchOptions {
  k: number;
  /** Only items whose text holds every term (Store.searchText). */
  text?: string[];
  threshold?: number;
  /** field -> accepted values (case-insensitive), as search/filters.ts means them. */
  filters?: Record<string, string[]>;
  excludeId?: string;
}

/** One writer per index (store/lock.ts for folders, an advisory lock in PostgreSQL). */
export interface IndexLock {
  release(): void | Promise<void>;
}
