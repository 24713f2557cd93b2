/**
 * The store keeps an index's items, their metadata and their raw backbone vectors.
 * SQLite is the embedded default; the interface is small so that another backend
 * (PostgreSQL) can stand beside it.
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
}

export interface ItemFailure { id: string; reason: string }

export type VectorKind = 'max' | 'avg' | 'colour';

/** Rows are in a stable order (insertion order); `ids[r]` is the item of row r. */
export interface VectorMatrix { ids: string[]; data: Float32Array; dim: number }

export interface Store {
  readonly location: string;
  getManifest(): IndexManifest | undefined;
  setManifest(manifest: IndexManifest): void;
  /** Inserts or refreshes items' image path and metadata (vectors untouched). */
  upsertItems(items: StoredItem[]): void;
  deleteItems(ids: string[]): void;
  /** Stores vectors and clears any earlier failure of those items, atomically. */
  putVectors(batch: ItemVectors[], failures?: ItemFailure[]): void;
  listItems(): StoredItem[];
  getItem(id: string): StoredItem | undefined;
  embeddedIds(): Set<string>;
  failures(): ItemFailure[];
  count(): { items: number; embedded: number; failed: number };
  /** All embedded vectors of one kind as one contiguous matrix. */
  loadMatrix(kind: VectorKind): VectorMatrix;
  /** Changes whenever items or vectors change; caches key on it. */
  generation(): number;
  close(): void;
}
