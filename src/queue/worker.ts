/**
 * `lookalike worker`: takes batches from the index's queue, embeds them with the shared
 * batch function (indexing/embed-batch.ts) and writes them to the store. Any number run at
 * once, on any machines, started and stopped at any time.
 *
 * - At least once: BullMQ holds a lock per batch while a worker works on it (renewed every
 *   half lock); a worker killed with -9 stops renewing, and the next stalled check of any
 *   other worker puts the batch back (lock 15 s + check every 10 s: under 30 s).
 * - Idempotent: vectors are upserted by id, so a batch done twice leaves one row per item.
 * - No mixed embeddings: a worker whose weights or preprocessing differ from the index's
 *   manifest refuses to start, and refuses any batch queued for others.
 * - Outages: Redis (the client reconnects for ever; BullMQ waits) and the store (a write is
 *   retried until it succeeds, the batch's lock renewed meanwhile) pause a worker; nothing
 *   is dropped. A batch that fails `attempts` times for another reason has its items
 *   recorded as failures, not retried for ever.
 */
import { Worker, type Job } from 'bullmq';
import type { Registry } from 'prom-client';
import { WORKER_DEFAULTS } from '../defaults.js';
import { isLookalikeError, LookalikeError } from '../errors.js';
import { embedPrepared, prepareBatch } from '../indexing/embed-batch.js';
import { Embedder } from '../model/embedder.js';
import { arithmeticOf } from '../model/quantise.js';
import { imageFingerprint, storedSettings, type EmbeddingSettings } from '../model/registry.js';
import type { FetchOptions } from '../image/fetch.js';
import { openStore } from '../store/open.js';
import { describeLocation, indexArgs } from '../store/location.js';
import { checkReachable, connect, KEY_PREFIX, parseQueueUrl, queueNameFor } from './connection.js';
import { countBatch, markStarted, type BatchJob } from './run.js';
import { workerMetrics } from './metrics.js';
import { checkCatalogRoot, relocateImage } from '../catalog/relocate.js';

export interface WorkerOptions {
  location: string;
  queue: string;
  log?: (message: string) => void;
  /** Reuse a loaded backbone (bench, tests). */
  embedder?: Embedder;
  fetch?: FetchOptions;
  concurrency?: number;
  /** Per batch, after it is written: where the time went (bench). */
  onBatch?: (timing: BatchTiming) => void;
  /** Where this machine has the catalog, when not where the indexer read it (catalog/relocate.ts). */
  catalogRoot?: string;
  /** Prometheus registry the worker's metrics go to (queue/metrics.ts). */
  registry?: Registry;
}

/** `waitMs`: waiting for the network while the other batch in hand used it. */
export interface BatchTiming { items: number; prepareMs: number; cnnMs: number; waitMs: number; storeMs: number; queueMs: number; totalMs: number }

export interface RunningWorker {
  readonly weightsId: string;
  /** Finishes the batches in hand, then disconnects. */
  close(): Promise<void>;
  /** Settles when the worker stops (closed, or refused a batch queued for other weights). */
  readonly stopped: Promise<void>;
}

export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const log = options.log ?? (() => {});
  const target = parseQueueUrl(options.queue);
  const catalogRoot = checkCatalogRoot(options.catalogRoot);
  await checkReachable(target);
  const store = await openStore(options.location);
  const manifest = store.getManifest();
  if (!manifest) {
    await store.close();
    throw new LookalikeError('INDEX_NOT_FOUND', { path: describeLocation(options.location), args: indexArgs(options.location) });
  }
  const settings: EmbeddingSettings = storedSettings(manifest.settings);
  const fingerprint = imageFingerprint(settings);
  // The index's own model: float32, or int8 rebuilt from the index's calibration.
  const embedder = options.embedder ?? await Embedder.create(settings.backbone, { log, precision: settings.precision, calibration: manifest.calibration });
  if (embedder.weightsId !== manifest.weightsId || embedder.spec.name !== settings.backbone || embedder.precision !== settings.precision
    || arithmeticOf(embedder.calibration) !== arithmeticOf(manifest.calibration)) {
    if (!options.embedder) await embedder.release();
    await store.close();
    throw new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.location), indexed: `${manifest.weightsId}, ${arithmeticOf(manifest.calibration)}`, requested: `${embedder.weightsId}, ${arithmeticOf(embedder.calibration)}` });
  }
  const name = await queueNameFor(options.location, { create: true });
  const redis = connect(target, true);
  const metrics = options.registry && workerMetrics(options.registry);
  // One network run at a time (it uses every core); the second batch in hand decodes meanwhile.
  let cnn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = cnn.then(fn, fn);
    cnn = result.catch(() => {});
    return result;
  };
  let refuse: LookalikeError | undefined;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => { stop = resolve; });

  const processor = async (job: Job<BatchJob>) => {
    const t0 = performance.now();
    const { data } = job;
    if (data.weightsId !== embedder.weightsId || data.fingerprint !== fingerprint) {
      refuse = new LookalikeError('MODEL_MISMATCH', { index: describeLocation(options.location), indexed: `${data.weightsId} ${data.fingerprint}`, requested: `${embedder.weightsId} ${fingerprint}` });
      void worker.close().then(stop);
      throw refuse;
    }
    await markStarted(redis, name, data.run);
    if (job.stalledCounter > 0) {
      metrics?.takenBack();
      log(`batch ${job.id}: taking it over (${data.items.length} items; the worker that had it stopped renewing its lock)`);
    }
    const root = data.root ?? manifest.catalog.root;
    const items = catalogRoot ? data.items.map((i) => ({ id: i.id, image: relocateImage(i.image, root, catalogRoot) })) : data.items;
    try {
      const prepared = await prepareBatch(items, settings, options.fetch);
      const imageOf = new Map(items.map((i) => [i.id, i.image]));
      metrics?.imageFailures(prepared.failures.map((f) => imageOf.get(f.id) ?? ''));
      const t1 = performance.now();
      // The network's own time, not the wait for the other batch in hand to leave it.
      let cnnMs = 0;
      const vectors = await exclusive(async () => {
        const start = performance.now();
        try {
          return await embedPrepared(embedder, settings, prepared);
        } finally {
          cnnMs = performance.now() - start;
        }
      });
      const t2 = performance.now();
      await untilWritten(() => store.putVectors(vectors, prepared.failures), log, metrics?.storeRetry);
      const t3 = performance.now();
      await countBatch(redis, name, data.run, job.id!, vectors.length, prepared.failures.length);
      const t4 = performance.now();
      metrics?.batchDone({ embedded: vectors.length, failed: prepared.failures.length, seconds: (t4 - t0) / 1000 });
      log(`batch ${job.id}: ${vectors.length} embedded, ${prepared.failures.length} failed in ${((t4 - t0) / 1000).toFixed(1)} s (${(vectors.length / Math.max(1e-3, (t4 - t0) / 1000)).toFixed(1)} images/s)`);
      options.onBatch?.({ items: data.items.length, prepareMs: t1 - t0, cnnMs, waitMs: t2 - t1 - cnnMs, storeMs: t3 - t2, queueMs: t4 - t3, totalMs: t4 - t0 });
      return { embedded: vectors.length, failed: prepared.failures.length };
    } catch (err) {
      // The last try: the batch's items become recorded failures instead of coming back.
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
        const reason = `failed ${job.attemptsMade + 1} times: ${err instanceof Error ? err.message : String(err)}`;
        await untilWritten(() => store.putVectors([], data.items.map((i) => ({ id: i.id, reason }))), log);
        await countBatch(redis, name, data.run, job.id!, 0, data.items.length);
        metrics?.batchDone({ embedded: 0, failed: data.items.length, seconds: (performance.now() - t0) / 1000 });
        log(`batch ${job.id}: ${reason}; its ${data.items.length} items are recorded as failures`);
        return { embedded: 0, failed: data.items.length };
      }
      throw err;
    }
  };

  const worker = new Worker<BatchJob>(name, processor, {
    connection: redis,
    prefix: KEY_PREFIX,
    concurrency: options.concurrency ?? WORKER_DEFAULTS.concurrency,
    lockDuration: WORKER_DEFAULTS.lockMs,
    stalledInterval: WORKER_DEFAULTS.stalledCheckMs,
    maxStalledCount: WORKER_DEFAULTS.maxStalled,
    autorun: true,
  });
  let lastError = '';
  worker.on('error', (err) => {
    // Redis went away: BullMQ retries by itself; say so once per kind of error, not per retry.
    if (err.message !== lastError) log(`queue: ${err.message} (waiting for Redis at ${target.server})`);
    lastError = err.message;
  });
  // The client's own 'ready', not the Worker's: BullMQ's Worker emits 'ready' once, when it
  // first starts, never after a reconnection, so the outage's end went unlogged (and its
  // error was never said again on a second outage). ioredis emits 'ready' on every reconnect.
  redis.on('ready', () => { if (lastError) log(`queue: connected again to ${target.server}`); lastError = ''; });
  // This worker's check found a batch whose worker stopped renewing its lock: it goes back in the queue.
  worker.on('stalled', (jobId) => log(`batch ${jobId}: its worker stopped renewing its lock (killed or cut off); back in the queue for any worker`));
  await worker.waitUntilReady();
  log(`worker ready: ${embedder.weightsId} ${fingerprint}, queue ${name} at ${target.server}`);

  let closing: Promise<void> | undefined;
  const close = () => closing ??= (async () => {
    await worker.close();
    redis.disconnect();
    await store.close();
    if (!options.embedder) await embedder.release();
    stop();
  })();
  void stopped.then(() => close());
  return { weightsId: embedder.weightsId, close, stopped: stopped.then(() => { if (refuse) throw refuse; }) };
}

/** Store errors worth waiting out: the database is down or busy, not the data wrong. */
function isOutage(err: unknown): boolean {
  if (isLookalikeError(err, 'STORE_UNREACHABLE')) return true;
  const code = (err as { code?: string }).code ?? '';
  const message = err instanceof Error ? err.message : '';
  return /^SQLITE_BUSY|^SQLITE_LOCKED|^ECONN|^57P0|^08/.test(code) || /Connection terminated|connection refused|timeout/i.test(message);
}

async function untilWritten(write: () => void | Promise<void>, log: (m: string) => void, onRetry?: () => void): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await write();
      if (attempt > 0) onRetry?.();
      if (attempt > 0) log('store: written again');
      return;
    } catch (err) {
      if (!isOutage(err)) throw err;
      if (attempt === 0) log(`store: ${err instanceof Error ? err.message : String(err)}; retrying until it is back`);
      await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))));
    }
  }
}
