/**
 * `lookalike index --queue`: the in-process run's first half (compare the catalog with the
 * store, write items and removals, keep INDEX_WOULD_REMOVE) under the same single-writer
 * lock, then the embedding work as batches in BullMQ for any number of workers.
 *
 * Nothing is queued twice: the store lock makes two `index` commands take turns, and the
 * second finds the first's run still going in Redis and refuses (QUEUE_BUSY). What a rerun
 * queues is only what changed (indexing/changes.ts): ids without vectors (new, or failed
 * before) and ids whose image changed (other bytes, another path or URL, another ETag).
 * Metadata changes are written here, without embedding.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { readCatalog, type Catalog } from '../catalog/index.js';
import { INDEX_BATCH_SIZE, WORKER_DEFAULTS } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { manifestFor, staleIds, writeCatalog } from '../indexing/build.js';
import { imagesToEmbed } from '../indexing/changes.js';
import type { FetchOptions } from '../image/fetch.js';
import { calibrateOnCatalog } from '../indexing/calibration.js';
import { ensureOnnxModel } from '../model/onnx-cache.js';
import { defaultSettings, getBackbone, imageFingerprint, storedSettings, type EmbeddingSettings } from '../model/registry.js';
import { describeLocation, isStoreUrl } from '../store/location.js';
import { discardUnfinishedIndex, lockStore, openStore } from '../store/open.js';
import { existsSync } from 'node:fs';
import { checkInputSize } from '../validate.js';
import { checkReachable, connect, KEY_PREFIX, parseQueueUrl, queueNameFor } from './connection.js';
import { runProgress, startRun, type BatchJob } from './run.js';

export interface EnqueueOptions {
  catalogDir: string;
  /** The index: a folder or a postgres://…#NAME location. */
  location: string;
  queue: string;
  settings?: Partial<EmbeddingSettings>;
  batchSize?: number;
  allowRemove?: boolean;
  /** Only catalog items whose id passes (fixed subsets in tests). */
  select?: (id: string) => boolean;
  /** Limits of the HEAD requests that check image URLs for changes. */
  fetch?: FetchOptions;
  log?: (message: string) => void;
}

export interface EnqueueReport {
  catalog: { root: string; kind: string; items: number; problems: Catalog['problems'] };
  run: string;
  queue: string;
  /** Items queued for embedding, in `jobs` batches. */
  queued: number;
  jobs: number;
  removed: number;
  /** Items already embedded with the same image (metadata refreshed, not embedded again). */
  unchanged: number;
  /** Of `queued`: items already embedded whose image changed (other bytes, URL or ETag). */
  changed: number;
}

export async function enqueueIndex(options: EnqueueOptions): Promise<EnqueueReport> {
  const log = options.log ?? (() => {});
  checkInputSize(options.settings?.width, options.settings?.height);
  const target = parseQueueUrl(options.queue);
  await checkReachable(target);
  const catalog = await readCatalog(options.catalogDir);
  const items = options.select ? catalog.items.filter((i) => options.select!(i.id)) : catalog.items;
  const redis = connect(target, false);
  let queue: Queue<BatchJob> | undefined;
  try {
    const folderExisted = isStoreUrl(options.location) || existsSync(options.location);
    const lock = await lockStore(options.location, 'lookalike index --queue');
    let unfinished = false;
    try {
      const store = await openStore(options.location, { create: true });
      try {
        // The index's own name for its queue: a second run spelling the location otherwise
        // (@localhost, @127.0.0.1) meets the first one's run here and is refused.
        const name = await queueNameFor(options.location, { create: true });
        queue = new Queue<BatchJob>(name, { connection: redis, prefix: KEY_PREFIX });
        const running = await runProgress(redis, queue, name);
        if (running && !running.finished) {
          throw new LookalikeError('QUEUE_BUSY', { index: describeLocation(options.location), done: running.done + running.failed, total: running.total, since: running.createdAt });
        }
        const existing = store.getManifest();
        const settings = defaultSettings({ ...(existing ? storedSettings(existing.settings) : {}), ...options.settings });
        if (existing && imageFingerprint(existing.settings) !== imageFingerprint(settings)) {
          throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.location), indexed: imageFingerprint(existing.settings), requested: imageFingerprint(settings) });
        }
        // The weights' id without loading the network: the workers do the embedding.
        const { weightsId } = await ensureOnnxModel(settings.backbone, log);
        if (existing && existing.weightsId !== weightsId) {
          throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.location), indexed: existing.weightsId, requested: weightsId });
        }
        const stale = staleIds(store, catalog.root, items, { indexDir: options.location, allowRemove: options.allowRemove });
        const { todo, changed } = await imagesToEmbed(store, items, { log, fetch: options.fetch });
        // An int8 index's model is fixed by its calibration: measured here on the catalog
        // for a new index (a few seconds of float32 inference), rebuilt from it by every worker.
        const calibration = settings.precision !== 'int8' ? undefined
          : existing?.calibration ?? await calibrateOnCatalog(items.map((i) => ({ id: i.id, image: i.imagePath })), settings, { log, fetch: options.fetch });
        const now = new Date().toISOString();
        const manifest = manifestFor({ existing, settings, weightsId, dimension: getBackbone(settings.backbone).dimension, calibration, catalog, extensions: existing?.extensions });
        await writeCatalog(store, manifest, stale, items);

        const run = randomUUID();
        const batchSize = options.batchSize ?? INDEX_BATCH_SIZE;
        const jobs: Array<{ name: string; data: BatchJob; opts: { jobId: string } }> = [];
        for (let i = 0; i < todo.length; i += batchSize) {
          const batch = todo.slice(i, i + batchSize).map((t) => ({ id: t.id, image: t.imagePath }));
          jobs.push({ name: 'embed', data: { run, weightsId, fingerprint: imageFingerprint(settings), items: batch, root: catalog.root }, opts: { jobId: `${run}-${jobs.length}` } });
        }
        if (jobs.length) {
          await startRun(redis, name, { id: run, index: describeLocation(options.location), catalog: catalog.root, total: todo.length, jobs: jobs.length, createdAt: now });
          const defaults = { attempts: WORKER_DEFAULTS.attempts, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: true, removeOnFail: 1000 };
          for (let i = 0; i < jobs.length; i += 500) {
            await queue.addBulk(jobs.slice(i, i + 500).map((j) => ({ ...j, opts: { ...defaults, ...j.opts } })));
          }
          log(`queued ${todo.length} of ${items.length} items in ${jobs.length} batches (${items.length - todo.length} unchanged)`);
        }
        return {
          catalog: { root: catalog.root, kind: catalog.kind, items: catalog.items.length, problems: catalog.problems },
          run, queue: name, queued: todo.length, jobs: jobs.length, removed: stale.length, unchanged: items.length - todo.length, changed,
        };
      } catch (err) {
        // A first run that failed before writing its manifest leaves no half-made index behind.
        unfinished = !store.getManifest();
        throw err;
      } finally {
        await store.close();
      }
    } finally {
      if (unfinished) await discardUnfinishedIndex(options.location, { folderExisted }).catch(() => {});
      await lock.release();
    }
  } finally {
    await queue?.close();
    redis.disconnect();
  }
}
