/**
 * Queued indexing through a Redis outage and a PostgreSQL outage: the worker pauses and
 * resumes, and nothing is lost or written twice. The real Redis and PostgreSQL (shared with
 * other test files) stay up: each outage is an OutageProxy between the worker and the server,
 * taken down right after a batch is written (so the cut always falls mid-run, however fast
 * the machine) and brought back a few seconds later. Each test has its own index (a fresh
 * schema, dropped after), hence its own queue (obliterated after).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Embedder } from '../../src/model/embedder.js';
import { buildIndex } from '../../src/indexing/build.js';
import { enqueueIndex } from '../../src/queue/enqueue.js';
import { startWorker, type BatchTiming } from '../../src/queue/worker.js';
import { KEY_PREFIX, parseQueueUrl, queueNameFor } from '../../src/queue/connection.js';
import { runProgress, type RunProgress } from '../../src/queue/run.js';
import { storeLocation } from '../../src/store/location.js';
import { openStore } from '../../src/store/open.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { VectorMatrix } from '../../src/store/types.js';
import { defaultItems, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { dropIndex, freshIndexName, PG_URL, sql } from '../helpers/pg.js';
import { OutageProxy } from '../helpers/outage.js';

const REDIS = process.env.LOOKALIKE_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const redis = new Redis(parseQueueUrl(REDIS).options);
const ITEMS = 24;
const BATCH = 3;
/** Longer than a batch takes, short enough for the suite. */
const OUTAGE_MS = 4000;
/** The shared float32 backbone (a new index is int8 by default). */
const FP32 = { precision: 'fp32' } as const;

let embedder: Embedder;
let catalog: string;
let reference: VectorMatrix;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  embedder = await Embedder.create('resnet50-imagenet');
  // 24 distinct photos: the 16 default shapes and colours, then more colours.
  const items = Array.from({ length: ITEMS }, (_, i) => ({ ...defaultItems()[i % 16], id: String(7000 + i), colour: `#${(0x100 + i * 37).toString(16).slice(-3)}` }));
  catalog = await makeCatalog(items);
  // The same catalog indexed in process, without any outage: the vectors to match.
  const local = path.join(tempDir('lookalike-outage-ref-'), 'index');
  await buildIndex({ catalogDir: catalog, indexDir: local, embedder });
  const store = SqliteStore.open(local, { readonly: true });
  reference = store.loadMatrix('max');
  store.close();
}, 180_000);

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => {});
  redis.disconnect();
  await embedder?.release();
});

/** A fresh PostgreSQL index; `via` is the URL the worker reaches the database by. */
function freshIndex(prefix: string, via = PG_URL): { name: string; location: string } {
  const name = freshIndexName(prefix);
  const location = storeLocation(via, name);
  cleanups.push(async () => {
    // Named after the index (queue/connection.ts): known while the index is there.
    const queue = await queueNameFor(location).catch(() => undefined);
    if (queue) {
      const q = new Queue(queue, { connection: redis, prefix: KEY_PREFIX });
      await q.obliterate({ force: true });
      await q.close();
      await redis.del(`${KEY_PREFIX}:${queue}:lk:run`, `${KEY_PREFIX}:${queue}:lk:counted`);
    }
    await dropIndex(PG_URL, name);
  });
  return { name, location };
}

function proxyFor(url: string): OutageProxy {
  const u = new URL(url);
  const proxy = new OutageProxy({ host: u.hostname, port: Number(u.port || (u.protocol === 'redis:' ? 6379 : 5432)) });
  cleanups.push(() => proxy.stop());
  return proxy;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, extra: () => string = () => ''): Promise<T> {
  for (const end = Date.now() + timeoutMs; ;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms\n${extra()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The run's progress once finished, read over the direct Redis. */
async function untilFinished(location: string, logs: string[]): Promise<RunProgress> {
  const name = (await queueNameFor(location))!;
  const queue = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
  try {
    return await until('the run finished', async () => {
      const p = await runProgress(redis, queue, name);
      return p?.finished ? p : undefined;
    }, 90_000, () => logs.join('\n'));
  } finally {
    await queue.close();
  }
}

/** Down now, back after OUTAGE_MS: a server restart, as the worker sees it. */
function outage(proxy: OutageProxy): Promise<{ downAt: number; upAt: number }> {
  return (async () => {
    await proxy.stop();
    const downAt = Date.now();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await proxy.start();
    return { downAt, upAt: Date.now() };
  })();
}

/** Exactly the catalog's items, each once, all embedded, vectors as in process. */
async function expectComplete(name: string): Promise<void> {
  const counts = (await sql(PG_URL, `SELECT (SELECT count(*)::int FROM "${name}".items) AS items, (SELECT count(DISTINCT id)::int FROM "${name}".items) AS distinct_items,
    (SELECT count(*)::int FROM "${name}".vectors) AS vectors, (SELECT count(DISTINCT id)::int FROM "${name}".vectors) AS distinct_vectors,
    (SELECT count(*)::int FROM "${name}".failures) AS failures`)).rows[0];
  expect(counts).toEqual({ items: ITEMS, distinct_items: ITEMS, vectors: ITEMS, distinct_vectors: ITEMS, failures: 0 });
  const store = await openStore(storeLocation(PG_URL, name), { readonly: true });
  try {
    await store.preload!(['max']);
    const ours = store.loadMatrix('max');
    expect([...ours.ids].sort()).toEqual([...reference.ids].sort());
    expect(ours.dim).toBe(reference.dim);
    for (const id of reference.ids) {
      const a = ours.data.subarray(ours.ids.indexOf(id) * ours.dim, (ours.ids.indexOf(id) + 1) * ours.dim);
      const b = reference.data.subarray(reference.ids.indexOf(id) * reference.dim, (reference.ids.indexOf(id) + 1) * reference.dim);
      let diff = 0;
      for (let k = 0; k < a.length; k++) diff = Math.max(diff, Math.abs(a[k] - b[k]));
      expect(diff, `item ${id}`).toBeLessThanOrEqual(1e-5);
    }
  } finally {
    await store.close();
  }
}

describe('queued indexing through outages', () => {
  it('a Redis outage mid-run pauses the worker, which reconnects and finishes: nothing lost, nothing twice', async () => {
    const { name, location } = freshIndex('qout_redis');
    const proxy = proxyFor(REDIS);
    await proxy.start();
    // Queued over the direct Redis; the worker reaches the same Redis through the proxy.
    const report = await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: BATCH });
    expect(report).toMatchObject({ queued: ITEMS, jobs: ITEMS / BATCH });
    const logs: string[] = [];
    const batches: Array<BatchTiming & { at: number }> = [];
    let cut: ReturnType<typeof outage> | undefined;
    const worker = await startWorker({
      location, queue: proxy.url(REDIS), embedder, log: (m) => logs.push(m),
      // Cut right after the first batch is written and counted: the run is still going.
      onBatch: (t) => { batches.push({ ...t, at: Date.now() }); cut ??= outage(proxy); },
    });
    try {
      const { downAt, upAt } = await until('the first batch and the outage', async () => cut && await cut, 90_000, () => logs.join('\n'));
      const progress = await untilFinished(location, logs);
      expect(progress).toMatchObject({ total: ITEMS, done: ITEMS, failed: 0 });
      // Paused: no batch was completed while Redis was away (at most the one in hand when it went).
      expect(batches.filter((b) => b.at > downAt + 500 && b.at < upAt).length).toBeLessThanOrEqual(1);
      expect(batches.some((b) => b.at >= upAt)).toBe(true);
      // Said once each way: waiting for Redis, then connected again.
      const waited = logs.findIndex((m) => /^queue: .*\(waiting for Redis at 127\.0\.0\.1:\d+\)$/.test(m));
      expect(waited, logs.join('\n')).toBeGreaterThanOrEqual(0);
      const back = await until('the reconnection logged', async () => { const i = logs.findIndex((m) => /^queue: connected again to 127\.0\.0\.1:\d+$/.test(m)); return i >= 0 ? i : undefined; }, 30_000, () => logs.join('\n'));
      expect(back, logs.join('\n')).toBeGreaterThan(waited);
    } finally {
      await worker.close();
      if (process.env.LOOKALIKE_TEST_VERBOSE) console.log(logs.join('\n'));
    }
    await expectComplete(name);
  }, 120_000);

  it('a PostgreSQL outage mid-run makes the worker retry its writes until the database is back: nothing lost, nothing twice', async () => {
    const proxy = proxyFor(PG_URL);
    await proxy.start();
    // The worker's (and so the queue's) location is the database through the proxy.
    const { name, location } = freshIndex('qout_pg', proxy.url(PG_URL));
    const report = await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: BATCH });
    expect(report).toMatchObject({ queued: ITEMS, jobs: ITEMS / BATCH });
    const logs: string[] = [];
    let written = 0;
    let cut: ReturnType<typeof outage> | undefined;
    const worker = await startWorker({
      location, queue: REDIS, embedder, log: (m) => logs.push(m),
      // Cut after the second batch is written: the other batch in hand and the rest must wait.
      onBatch: () => { if (++written === 2) cut ??= outage(proxy); },
    });
    try {
      await until('two batches and the outage', async () => cut && await cut, 90_000, () => logs.join('\n'));
      const progress = await untilFinished(location, logs);
      expect(progress).toMatchObject({ total: ITEMS, done: ITEMS, failed: 0 });
      const retrying = logs.findIndex((m) => /^store: .*; retrying until it is back$/.test(m));
      expect(retrying, logs.join('\n')).toBeGreaterThanOrEqual(0);
      expect(logs.findIndex((m, i) => i > retrying && m === 'store: written again'), logs.join('\n')).toBeGreaterThan(retrying);
      // No batch gave up: every item was embedded, none recorded as a failure.
      expect(logs.filter((m) => /recorded as failures/.test(m))).toEqual([]);
    } finally {
      await worker.close();
      if (process.env.LOOKALIKE_TEST_VERBOSE) console.log(logs.join('\n'));
    }
    await expectComplete(name);
  }, 120_000);
});
