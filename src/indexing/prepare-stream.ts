/**
 * Decoding (and, for URL catalogs, fetching) ahead of the network, in the order items
 * arrive rather than the catalog's. A batch used to wait for its slowest member: one image
 * URL that took 15 s to time out (45 s with its retries) held back its whole batch and the
 * CNN with it, so a few slow hosts stretched a 46-item index to 149 s. Here at most
 * `concurrency` items are in hand at once, finished items are handed out as they finish,
 * and a batch is simply the next `batchSize` of them (or fewer, when nothing has arrived for
 * half a second): a slow URL occupies one slot while the others flow past it. Memory stays bounded: no more than `concurrency + batchSize`
 * items are started and not yet taken.
 *
 * The order items are embedded in does not change their vectors, nor the index (the store
 * keeps the catalog's order, store/*.ts `seq`).
 */
import type { EmbeddingSettings } from '../model/registry.js';
import type { FetchOptions } from '../image/fetch.js';
import { batchOf, prepareItem, type EmbedJob, type PreparedBatch, type PreparedItem } from './embed-batch.js';

export interface PrepareStreamOptions {
  batchSize: number;
  /** Items fetched or decoded at once (default: the batch size, at least 8). */
  concurrency?: number;
  fetch?: FetchOptions;
  /** Items already prepared (the int8 calibration's): taken from here, not fetched again. */
  prepared?: Map<string, PreparedItem>;
}

/** Each item prepared, in the order they finish. */
export async function* preparedInArrivalOrder(jobs: readonly EmbedJob[], prepare: (job: EmbedJob) => Promise<PreparedItem>, options: { concurrency: number; ahead: number; prepared?: Map<string, PreparedItem> }): AsyncGenerator<PreparedItem> {
  const finished: PreparedItem[] = [];
  let next = 0, running = 0;
  let wake: (() => void) | undefined;
  const launch = () => {
    while (next < jobs.length && running < options.concurrency && running + finished.length < options.ahead) {
      const job = jobs[next++];
      const done = options.prepared?.get(job.id);
      if (done && done.job.image === job.image) {
        options.prepared!.delete(job.id);
        finished.push(done);
        continue;
      }
      running++;
      void prepare(job).then((item) => {
        running--;
        finished.push(item);
        wake?.();
      });
    }
  };
  launch();
  while (next < jobs.length || running > 0 || finished.length > 0) {
    if (!finished.length) await new Promise<void>((resolve) => { wake = resolve; });
    wake = undefined;
    const item = finished.shift();
    if (item) yield item;
    launch();
  }
}

/**
 * A batch that is not full is handed over anyway once no item has arrived for this long:
 * the items that did arrive are embedded while the stragglers (slow hosts) are awaited.
 */
const PARTIAL_BATCH_AFTER_MS = 500;

/** Batches of `batchSize` prepared items, each as soon as it is full (or items stop arriving for a while). */
export async function* preparedBatches(jobs: readonly EmbedJob[], settings: EmbeddingSettings, options: PrepareStreamOptions): AsyncGenerator<PreparedBatch> {
  const concurrency = options.concurrency ?? Math.max(8, options.batchSize);
  const items = preparedInArrivalOrder(jobs, (job) => prepareItem(job, settings, options.fetch), { concurrency, ahead: concurrency + options.batchSize, prepared: options.prepared });
  let batch: PreparedItem[] = [];
  let pending: Promise<IteratorResult<PreparedItem>> | undefined;
  for (;;) {
    pending ??= items.next();
    const result = batch.length ? await orLate(pending, PARTIAL_BATCH_AFTER_MS) : await pending;
    if (result === 'late') {
      yield batchOf(batch, settings);
      batch = [];
      continue;
    }
    pending = undefined;
    if (result.done) break;
    batch.push(result.value);
    if (batch.length === options.batchSize) {
      yield batchOf(batch, settings);
      batch = [];
    }
  }
  if (batch.length) yield batchOf(batch, settings);
}

async function orLate<T>(promise: Promise<T>, ms: number): Promise<T | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<'late'>((resolve) => { timer = setTimeout(resolve, ms, 'late'); })]);
  } finally {
    clearTimeout(timer);
  }
}
