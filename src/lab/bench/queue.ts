/**
 * `lookalike bench --queue`: what indexing through the job queue costs, in one run on the
 * same items. (1) In process, as `lookalike index`; (2) the same items through Redis and one
 * worker in this process, with the worker's time split into image preparation, network,
 * store write and queue bookkeeping; (3) throughput with 1 and with 2 worker processes;
 * (4) the store write and the queue bookkeeping per item alone, which is what the queue path
 * adds to the CNN's work. From the per-worker rate and the store's write rate: wall time for
 * 1,000,000 images on W machines and what limits first.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { readCatalog } from '../../catalog/index.js';
import { buildIndex } from '../../indexing/build.js';
import { Embedder } from '../../model/embedder.js';
import { defaultSettings } from '../../model/registry.js';
import { connect, KEY_PREFIX, parseQueueUrl, queueNameFor } from '../../queue/connection.js';
import { enqueueIndex } from '../../queue/enqueue.js';
import { calibrateOnCatalog } from '../../indexing/calibration.js';
import { countBatch, markStarted, runProgress, startRun, type RunProgress } from '../../queue/run.js';
import { redact, storeLocation } from '../../store/location.js';
import { openStore, removeIndex } from '../../store/open.js';
import { randomBytes } from 'node:crypto';
import { startWorker, type BatchTiming } from '../../queue/worker.js';

export interface QueueBenchResult {
  /** Where the indexes lived: 'SQLite (temporary folders)' or the PostgreSQL server. */
  store: string;
  items: number;
  batch: number;
  inProcess: { msPerItem: number; imagesPerSecond: number };
  queued: { msPerItem: number; imagesPerSecond: number; split: { prepareMs: number; cnnMs: number; storeMs: number; queueMs: number } };
  /**
   * The store's write and the queue's bookkeeping per item, each measured alone (nothing else
   * running). Inside a worker the same calls also wait for the CPU that the other batch's
   * network holds (`queued.split`), which is not their own cost.
   */
  alone: { storeMs: number; queueMs: number };
  /** (queued - in process) per item, and store + queue time per item measured alone, as shares of the network's time per item. */
  overhead: { endToEndShareOfCnn: number; storeAndQueueShareOfCnn: number };
  workers: Array<{ workers: number; imagesPerSecond: number }>;
  /** Items per second one store takes (its write time per item) and image bytes per item. */
  storeItemsPerSecond: number;
  meanImageBytes: number;
  projection: Array<{ machines: number; hours: number; limit: string }>;
}

export async function runQueueBench(options: {
  catalogDir: string; queue: string; items?: number; batch?: number; log?: (m: string) => void;
  /** A PostgreSQL server (postgres://…) for every index of the run, instead of temporary folders. */
  store?: string;
  workerCommand: (location: string) => { command: string; args: string[] };
}): Promise<QueueBenchResult> {
  const log = options.log ?? (() => {});
  const n = options.items ?? 160;
  const batch = options.batch ?? 16;
  const catalog = await readCatalog(options.catalogDir);
  const chosen = catalog.items.slice(0, n);
  const ids = new Set(chosen.map((i) => i.id));
  const select = (id: string) => ids.has(id);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lookalike-bench-queue-'));
  const target = parseQueueUrl(options.queue);
  const redis = connect(target, false);
  const cleanups: Array<() => Promise<unknown>> = [];
  // The default arithmetic (int8): calibrated on the items of the run, as `index --queue`
  // does for each new index (the same items give the same calibration).
  const settings = defaultSettings();
  const calibration = settings.precision === 'int8' ? await calibrateOnCatalog(chosen.map((i) => ({ id: i.id, image: i.imagePath })), settings, { log }) : undefined;
  const embedder = await Embedder.create(settings.backbone, { log, precision: settings.precision, calibration });
  // Every index of the run: a temporary folder, or a throwaway index in the PostgreSQL store.
  const run = randomBytes(3).toString('hex');
  const place = (name: string) => {
    const location = options.store ? storeLocation(options.store, `bench_${name.replace(/-/g, '_')}_${run}`) : path.join(tmp, name);
    cleanups.push(() => removeIndex(location));
    return location;
  };
  try {
    // Warm-up: the first batches of a fresh session are slower, and neither side should pay for them.
    await buildIndex({ catalogDir: options.catalogDir, indexDir: place('warm'), embedder, batchSize: batch, select: (id) => id === chosen[0].id });

    log(`in process: ${n} items...`);
    const inProcLoc = place('in-process');
    const inProc = await buildIndex({ catalogDir: options.catalogDir, indexDir: inProcLoc, embedder, batchSize: batch, select });
    const inProcMs = 1000 / inProc.imagesPerSecond;

    log(`queue + store, one worker in this process: ${n} items...`);
    const qLoc = place('queued');
    const track = async (location: string) => {
      const name = await queueNameFor(location, { create: true });
      const queue = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
      cleanups.push(async () => { await queue.obliterate({ force: true }); await redis.del(`${KEY_PREFIX}:${name}:lk:run`, `${KEY_PREFIX}:${name}:lk:counted`); await queue.close(); });
      return async (): Promise<RunProgress> => {
        for (;;) {
          const p = await runProgress(redis, queue, name);
          if (p?.finished) return p;
          await new Promise((r) => setTimeout(r, 100));
        }
      };
    };
    await enqueueIndex({ catalogDir: options.catalogDir, location: qLoc, queue: options.queue, batchSize: batch, select });
    const finishedQ = await track(qLoc);
    const timings: BatchTiming[] = [];
    const worker = await startWorker({ location: qLoc, queue: options.queue, embedder, onBatch: (t) => timings.push(t) });
    const q = await finishedQ();
    await worker.close();
    const qMs = (q.lastAt! - q.startedAt!) / n;
    const sum = (k: keyof BatchTiming) => timings.reduce((s, t) => s + t[k], 0) / n;
    const split = { prepareMs: sum('prepareMs'), cnnMs: sum('cnnMs'), storeMs: sum('storeMs'), queueMs: sum('queueMs') };

    const workers: QueueBenchResult['workers'] = [];
    for (const w of [1, 2]) {
      log(`${w} worker process(es): ${n} items...`);
      const loc = place(`workers-${w}`);
      await enqueueIndex({ catalogDir: options.catalogDir, location: loc, queue: options.queue, batchSize: batch, select });
      const finished = await track(loc);
      const { command, args } = options.workerCommand(loc);
      const children = Array.from({ length: w }, () => spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] }));
      try {
        const p = await finished();
        workers.push({ workers: w, imagesPerSecond: n / ((p.lastAt! - p.startedAt!) / 1000) });
      } finally {
        for (const c of children) c.kill('SIGTERM');
        await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(0) : c.once('exit', r)))));
      }
    }

    const alone = await measureAlone(place('write-alone'), inProcLoc, redis, `bench-alone-${run}`, batch);
    const rate1 = workers[0].imagesPerSecond;
    const storeItemsPerSecond = 1000 / alone.storeMs;
    const meanImageBytes = chosen.reduce((s, i) => s + statSync(i.imagePath).size, 0) / n;
    const projection = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].map((machines) => {
      const wanted = machines * rate1;
      const rate = Math.min(wanted, storeItemsPerSecond);
      return { machines, hours: 1_000_000 / rate / 3600, limit: wanted > storeItemsPerSecond ? `store writes (${storeItemsPerSecond.toFixed(0)} items/s)` : `CNN (${rate1.toFixed(1)} images/s per machine)` };
    });
    return {
      store: options.store ? `PostgreSQL ${redact(options.store)} (throwaway indexes)` : 'SQLite (temporary folders)',
      items: n, batch,
      inProcess: { msPerItem: inProcMs, imagesPerSecond: inProc.imagesPerSecond },
      queued: { msPerItem: qMs, imagesPerSecond: 1000 / qMs, split },
      alone,
      overhead: { endToEndShareOfCnn: (qMs - inProcMs) / split.cnnMs, storeAndQueueShareOfCnn: (alone.storeMs + alone.queueMs) / split.cnnMs },
      workers, storeItemsPerSecond, meanImageBytes, projection,
    };
  } finally {
    for (const c of cleanups) await c().catch(() => {});
    redis.disconnect();
    await embedder.release();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The per-item cost of the two calls the queue path adds, alone: writing the in-process
 * index's vectors again into a fresh index of the same store, batch by batch as a worker
 * writes them, and a worker's two Redis calls per batch on a throwaway run.
 */
async function measureAlone(target: string, source: string, redis: ReturnType<typeof connect>, queue: string, batch: number): Promise<{ storeMs: number; queueMs: number }> {
  const from = await openStore(source, { readonly: true });
  const to = await openStore(target, { create: true });
  try {
    await from.preload?.(['max', 'avg', 'colour']);
    const [max, avg, colour] = (['max', 'avg', 'colour'] as const).map((k) => from.loadMatrix(k));
    const sources = await from.imageSources();
    await to.setManifest(from.getManifest()!);
    await to.upsertItems(from.listItems());
    const row = (m: typeof max, r: number) => m.data.slice(r * m.dim, (r + 1) * m.dim);
    const n = max.ids.length;
    const t0 = performance.now();
    for (let b = 0; b < n; b += batch) {
      await to.putVectors(max.ids.slice(b, b + batch).map((id, i) => ({ id, max: row(max, b + i), avg: row(avg, b + i), colour: row(colour, b + i), source: sources.get(id) })));
    }
    const storeMs = (performance.now() - t0) / n;
    await startRun(redis, queue, { id: 'alone', index: target, catalog: '', total: n, jobs: Math.ceil(n / batch), createdAt: new Date().toISOString() });
    const t1 = performance.now();
    for (let b = 0; b < n; b += batch) {
      await markStarted(redis, queue, 'alone');
      await countBatch(redis, queue, 'alone', `alone-${b}`, Math.min(batch, n - b), 0);
    }
    const queueMs = (performance.now() - t1) / n;
    await redis.del(`${KEY_PREFIX}:${queue}:lk:run`, `${KEY_PREFIX}:${queue}:lk:counted`);
    return { storeMs, queueMs };
  } finally {
    await from.close();
    await to.close();
  }
}
