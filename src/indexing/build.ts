/**
 * Building and updating an index from a catalog.
 *
 * Incremental and resumable by construction: every run compares the catalog with the
 * store (new ids are embedded, removed ids dropped, metadata refreshed), and vectors are
 * committed batch by batch, so an interrupted run continues where it stopped.
 *
 * Pipelined: while onnxruntime runs batch i on its threads, sharp (libvips threads)
 * decodes and resizes batch i+1.
 */
import { readCatalog, type Catalog } from '../catalog/index.js';
import { INDEX_BATCH_SIZE } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { Embedder } from '../model/embedder.js';
import { calibrateOnCatalog } from './calibration.js';
import { arithmeticOf, type Calibration } from '../model/quantise.js';
import { defaultSettings, imageFingerprint, storedSettings, type EmbeddingSettings } from '../model/registry.js';
import { embedPrepared, type EmbedJob, type PreparedItem } from './embed-batch.js';
import { preparedBatches } from './prepare-stream.js';
import { imagesToEmbed } from './changes.js';
import { COLOUR_DIMENSION } from '../image/colour.js';
import { discardUnfinishedIndex, lockStore, openStore, settleStore } from '../store/open.js';
import { describeLocation, isStoreUrl } from '../store/location.js';
import { existsSync } from 'node:fs';
import { checkInputSize } from '../validate.js';
import type { IndexManifest, ItemFailure, Store } from '../store/types.js';
import { adoptHeadFile, recentreIndexHead } from '../head/index-head.js';
import type { SearchSetting } from '../search/engine.js';
import type { FetchOptions } from '../image/fetch.js';

export const FORMAT_VERSION = 1;

export interface IndexProgress {
  done: number;
  total: number;
  failed: number;
  /** items per second over the run so far */
  rate: number;
}

export interface BuildOptions {
  catalogDir: string;
  indexDir: string;
  settings?: Partial<EmbeddingSettings>;
  batchSize?: number;
  /** Embed at most this many new items (tests, samples); the rest waits for the next run. */
  limit?: number;
  /**
   * Ids to embed before the others, e.g. a representative sample: with `limit`, a first
   * index that already covers the whole catalog's mix; the next run embeds the rest.
   */
  first?: readonly string[];
  /** Only index catalog items whose id passes (fixed subsets in tests). */
  select?: (id: string) => boolean;
  onProgress?: (p: IndexProgress) => void;
  log?: (message: string) => void;
  signal?: AbortSignal;
  /** Reuse a loaded backbone (tests, tuning); by default one is created and released. */
  embedder?: Embedder;
  /** A head file (`lookalike train --save`) to search this index with; refused (HEAD_MISMATCH) when trained on another backbone. */
  head?: string;
  /**
   * Let this run remove most of the index (items the catalog no longer has). Without it a
   * run that would drop more than half of an index's items (and more than a handful) is
   * refused with INDEX_WOULD_REMOVE: usually the wrong catalog, not a smaller one.
   */
  allowRemove?: boolean;
  /** How searches are answered from now on (stored in the manifest): auto, exact or ann. */
  search?: SearchSetting;
  /** Limits and URL policy of image URLs (image/fetch.ts): time-out, size, hosts allowed although private. */
  fetch?: FetchOptions;
}

/**
 * The manifest an indexing run writes, in process or through the queue: one place, so that
 * both record the same things (the int8 calibration once went missing from one of two copies).
 */
export function manifestFor(o: {
  existing?: IndexManifest; settings: EmbeddingSettings; weightsId: string; dimension: number;
  calibration?: Calibration; catalog: Pick<Catalog, 'root' | 'kind' | 'columns'>; extensions?: Record<string, unknown>;
}): IndexManifest {
  const now = new Date().toISOString();
  return {
    formatVersion: FORMAT_VERSION,
    settings: o.settings,
    weightsId: o.weightsId,
    dimension: o.dimension,
    colourDimension: COLOUR_DIMENSION,
    ...(o.calibration && { calibration: o.calibration }),
    catalog: { root: o.catalog.root, kind: o.catalog.kind, columns: o.catalog.columns },
    createdAt: o.existing?.createdAt ?? now,
    updatedAt: now,
    extensions: o.extensions,
  };
}

/** Writes the manifest, drops the items that left the catalog and refreshes the rest (vectors untouched). */
export async function writeCatalog(store: Store, manifest: IndexManifest, stale: string[], items: Catalog['items']): Promise<void> {
  await store.setManifest(manifest);
  await store.deleteItems(stale);
  await store.upsertItems(items.map((i) => ({ id: i.id, image: i.imagePath, metadata: i.metadata })));
}

/** Removals above this share of the index need `allowRemove`... */
const REMOVE_SHARE_LIMIT = 0.5;
/** ...unless they are this few: trimming a small index is normal. */
const REMOVE_COUNT_FREE = 5;

/**
 * The ids the store holds and the catalog no longer lists, refused with INDEX_WOULD_REMOVE
 * when they are most of the index (shared with queued indexing, queue/enqueue.ts).
 */
export function staleIds(store: Store, catalogRoot: string, items: ReadonlyArray<{ id: string }>, options: { indexDir: string; allowRemove?: boolean }): string[] {
  const wanted = new Set(items.map((i) => i.id));
  const stored = store.listItems();
  const stale = stored.filter((i) => !wanted.has(i.id)).map((i) => i.id);
  if (!options.allowRemove && stale.length > REMOVE_COUNT_FREE && stale.length > REMOVE_SHARE_LIMIT * stored.length) {
    throw new LookalikeError('INDEX_WOULD_REMOVE', { catalog: catalogRoot, path: describeLocation(options.indexDir), removed: stale.length, total: stored.length });
  }
  return stale;
}

export interface BuildReport {
  catalog: { root: string; kind: string; items: number; problems: Catalog['problems'] };
  added: number;
  /** Of `added`: items embedded again because their image changed. */
  changed: number;
  removed: number;
  failed: ItemFailure[];
  total: number;
  pending: number;
  seconds: number;
  imagesPerSecond: number;
  interrupted: boolean;
}

export async function buildIndex(options: BuildOptions): Promise<BuildReport> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  checkInputSize(options.settings?.width, options.settings?.height);
  // Read the catalog before touching the index: a bad catalog leaves the index intact.
  const catalog = await readCatalog(options.catalogDir);
  const items = options.select ? catalog.items.filter((i) => options.select!(i.id)) : catalog.items;
  // One writer at a time, locked before the store is opened: a refused run changes nothing.
  const folderExisted = isStoreUrl(options.indexDir) || existsSync(options.indexDir);
  const lock = await lockStore(options.indexDir, 'lookalike index');
  let store: Store;
  try {
    store = await openStore(options.indexDir, { create: true });
  } catch (err) {
    await lock.release();
    throw err;
  }
  let unfinished = false;
  try {
    const existing = store.getManifest();
    // An index keeps the settings it was built with (an old one is float32, see storedSettings);
    // a passed-in backbone brings its own precision.
    const settings = defaultSettings({
      ...(existing ? storedSettings(existing.settings) : {}),
      ...(options.embedder && { precision: options.embedder.precision }),
      ...options.settings,
    });
    if (existing && imageFingerprint(existing.settings) !== imageFingerprint(settings)) {
      throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.indexDir), indexed: imageFingerprint(existing.settings), requested: imageFingerprint(settings) });
    }
    const stale = staleIds(store, catalog.root, items, options);
    if (options.embedder && options.embedder.precision !== settings.precision) {
      throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.indexDir), indexed: imageFingerprint(settings), requested: `${settings.backbone} ${options.embedder.precision}` });
    }
    // int8: another calibration is another model; a passed-in one must be the index's own.
    if (options.embedder?.calibration && existing?.calibration && arithmeticOf(options.embedder.calibration) !== arithmeticOf(existing.calibration)) {
      throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.indexDir), indexed: arithmeticOf(existing.calibration), requested: arithmeticOf(options.embedder.calibration) });
    }
    // int8: the index's calibration, or, for a new index, one measured now on its catalog.
    // What calibration prepared is embedded as it is: each image URL is fetched once.
    const prepared = new Map<string, PreparedItem>();
    const calibration: Calibration | undefined = settings.precision !== 'int8' ? undefined
      : options.embedder?.calibration ?? existing?.calibration ?? await calibrateOnCatalog(items.map((i) => ({ id: i.id, image: i.imagePath })), settings, { log, fetch: options.fetch, prepared });
    const embedder = options.embedder ?? await Embedder.create(settings.backbone, { log, precision: settings.precision, calibration });
    if (existing && existing.weightsId !== embedder.weightsId) {
      throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.indexDir), indexed: existing.weightsId, requested: embedder.weightsId });
    }
    // Checked before the index is touched: a refused head leaves it as it was.
    let head: Awaited<ReturnType<typeof adoptHeadFile>> | undefined;
    if (options.head) {
      try {
        head = await adoptHeadFile(options.head, store, embedder.weightsId, settings);
      } catch (err) {
        if (!options.embedder) await embedder.release();
        throw err;
      }
    }
    const extensions = head || options.search ? { ...existing?.extensions, ...(head && { head }), ...(options.search && { search: options.search }) } : existing?.extensions;
    // Before the catalog is written: the comparison needs the image paths the vectors came from.
    const changes = await imagesToEmbed(store, items, { log, fetch: options.fetch });
    await writeCatalog(store, manifestFor({ existing, settings, weightsId: embedder.weightsId, dimension: embedder.dimension, calibration, catalog, extensions }), stale, items);

    const embedded = store.embeddedIds();
    let todo = changes.todo;
    if (options.first?.length) {
      const first = new Set(options.first);
      todo = [...todo.filter((i) => first.has(i.id)), ...todo.filter((i) => !first.has(i.id))];
    }
    const pendingBeyondLimit = options.limit !== undefined ? Math.max(0, todo.length - options.limit) : 0;
    if (options.limit !== undefined) todo = todo.slice(0, options.limit);
    if (todo.length) log(`embedding ${todo.length} of ${items.length} items (${embedded.size - changes.changed} already in the index${changes.changed ? `, ${changes.changed} with a changed image` : ''})`);

    const result = await embedAll(store, embedder, settings, todo.map((i) => ({ id: i.id, image: i.imagePath })), options, prepared);
    prepared.clear();
    if (!options.embedder) await embedder.release();
    // A head trained on another catalog is centred on this one once it is embedded (head.ts recentredHead).
    if (head && !result.interrupted && await recentreIndexHead(store)) log('the head is re-centred on this catalog\'s vectors');
    const seconds = (performance.now() - started) / 1000;
    return {
      catalog: { root: catalog.root, kind: catalog.kind, items: catalog.items.length, problems: catalog.problems },
      added: result.added,
      changed: changes.changed,
      removed: stale.length,
      failed: store.failures(),
      total: store.count().embedded,
      pending: pendingBeyondLimit + (todo.length - result.added - result.failed),
      seconds,
      imagesPerSecond: result.seconds > 0 ? result.added / result.seconds : 0,
      interrupted: result.interrupted,
    };
  } catch (err) {
    // A first run that failed before writing its manifest leaves no half-made index behind.
    unfinished = !store.getManifest();
    throw err;
  } finally {
    settleStore(store);
    await store.close();
    if (unfinished) await discardUnfinishedIndex(options.indexDir, { folderExisted }).catch(() => {});
    await lock.release();
  }
}

async function embedAll(store: Store, embedder: Embedder, settings: EmbeddingSettings, jobs: EmbedJob[], options: BuildOptions, prepared?: Map<string, PreparedItem>) {
  const batchSize = options.batchSize ?? INDEX_BATCH_SIZE;
  const started = performance.now();
  let added = 0, failed = 0, interrupted = false;
  // Decoding (fetching) runs ahead in arrival order while the network embeds (prepare-stream.ts).
  for await (const current of preparedBatches(jobs, settings, { batchSize, fetch: options.fetch, prepared })) {
    if (options.signal?.aborted) { interrupted = true; break; }
    const vectors = await embedPrepared(embedder, settings, current);
    await store.putVectors(vectors, current.failures);
    added += vectors.length;
    failed += current.failures.length;
    const elapsed = (performance.now() - started) / 1000;
    options.onProgress?.({ done: added + failed, total: jobs.length, failed, rate: elapsed > 0 ? (added + failed) / elapsed : 0 });
  }
  return { added, failed, interrupted, seconds: (performance.now() - started) / 1000 };
}
