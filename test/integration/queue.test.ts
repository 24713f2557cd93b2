/**
 * Indexing through the job queue, on the real Redis (127.0.0.1:6379, or LOOKALIKE_TEST_REDIS)
 * and the real CNN: a URL catalog served by a local HTTP server with every way a URL goes
 * wrong, two `index` commands at once, reruns that queue only what changed, and the refusals.
 * Every test uses its own index folder, hence its own queue, obliterated afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Embedder } from '../../src/model/embedder.js';
import { buildIndex } from '../../src/indexing/build.js';
import { readCatalog } from '../../src/catalog/index.js';
import { enqueueIndex } from '../../src/queue/enqueue.js';
import { startWorker } from '../../src/queue/worker.js';
import { KEY_PREFIX, parseQueueUrl, queueNameFor } from '../../src/queue/connection.js';
import { runProgress } from '../../src/queue/run.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { isLookalikeError } from '../../src/errors.js';
import { drawProduct, makeCatalog, tempDir, type Shape } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

const REDIS = process.env.LOOKALIKE_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const redis = new Redis(parseQueueUrl(REDIS).options);
let embedder: Embedder;
let server: http.Server;
let base = '';
/** Index folders made here: their queues are obliterated afterwards. */
const queues: string[] = [];
const GOOD: Array<[string, Shape, string]> = [['1', 'shirt', '#d22'], ['2', 'trousers', '#23c'], ['3', 'watch', '#2a3'], ['4', 'bag', '#111'], ['5', 'shirt', '#23c'], ['6', 'bag', '#d22']];
const images = new Map<string, Buffer>();
let flakyHits = 0;

beforeAll(async () => {
  embedder = await Embedder.create('resnet50-imagenet');
  for (const [id, shape, colour] of GOOD) images.set(id, await drawProduct(shape, colour));
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const good = /^\/img\/(\d+)\.jpg$/.exec(url);
    // An ETag, as CDNs send: a rerun's HEAD request notices an image replaced under its URL.
    if (good && images.has(good[1])) return void res.writeHead(200, { 'content-type': 'image/jpeg', etag: `"${createHash('md5').update(images.get(good[1])!).digest('hex')}"` }).end(images.get(good[1]));
    if (url === '/slow.jpg') return void setTimeout(() => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(images.get('1')), 3000);
    if (url === '/huge.jpg') {
      // No Content-Length (chunked): the limit must hold while the body streams.
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.write(images.get('1'));
      res.end(Buffer.alloc(300_000, 1));
      return;
    }
    if (url === '/to-file') return void res.writeHead(302, { location: 'file:///etc/passwd' }).end();
    if (url === '/page.jpg') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not a photo</html>');
    if (url === '/flaky.jpg') {
      // Fails once with a 503, then answers: a transient failure is retried, not recorded.
      if (flakyHits++ === 0) return void res.writeHead(503).end();
      return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end(images.get('6'));
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  for (const location of queues) {
    const name = await queueNameFor(location);
    if (!name) continue;
    const q = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
    await q.obliterate({ force: true });
    await q.close();
    await redis.del(`${KEY_PREFIX}:${name}:lk:run`, `${KEY_PREFIX}:${name}:lk:counted`);
  }
  redis.disconnect();
  server?.close();
  await embedder?.release();
});

function indexFolder(): string {
  const dir = path.join(tempDir('lookalike-queue-'), 'index');
  queues.push(dir);
  return dir;
}

function urlCatalog(rows: Array<[string, string, string]>): string {
  const dir = tempDir('lookalike-url-catalog-');
  writeFileSync(path.join(dir, 'styles.csv'), `id,articleType,link\n${rows.map((r) => r.join(',')).join('\n')}\n`);
  return dir;
}

async function untilFinished(location: string, timeoutMs = 120_000) {
  const name = (await queueNameFor(location))!;
  const queue = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
  try {
    for (const end = Date.now() + timeoutMs; Date.now() < end;) {
      const p = await runProgress(redis, queue, name);
      if (p?.finished) return p;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('the run did not finish in time');
  } finally {
    await queue.close();
  }
}

/** The photo server is on this machine, which URL catalogs reach only when it is allowed. */
const fetchLimits = { timeoutMs: 1000, maxBytes: 200_000, retries: 1, allowHosts: ['127.0.0.1'] };
/** The queue's mechanics are tested with the shared float32 backbone (a new index is int8 by default: see the last describe). */
const FP32 = { precision: 'fp32' } as const;

describe('a catalog of image URLs, indexed by a worker', () => {
  it('records each bad URL as a failure with its reason and indexes the rest', async () => {
    const rows: Array<[string, string, string]> = [
      ...GOOD.slice(0, 5).map(([id]) => [id, 'Shirts', `${base}/img/${id}.jpg`] as [string, string, string]),
      ['gone', 'Shirts', `${base}/img/99.jpg`],
      ['slow', 'Shirts', `${base}/slow.jpg`],
      ['huge', 'Shirts', `${base}/huge.jpg`],
      ['file', 'Shirts', `${base}/to-file`],
      ['page', 'Shirts', `${base}/page.jpg`],
      ['flaky', 'Shirts', `${base}/flaky.jpg`],
    ];
    const catalog = urlCatalog(rows);
    const location = indexFolder();
    const report = await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: 4 });
    expect(report).toMatchObject({ queued: 11, jobs: 3, removed: 0 });
    const worker = await startWorker({ location, queue: REDIS, embedder, fetch: fetchLimits });
    const progress = await untilFinished(location);
    await worker.close();
    expect(progress).toMatchObject({ total: 11, done: 6, failed: 5 });

    const store = SqliteStore.open(location);
    expect([...store.embeddedIds()].sort()).toEqual(['1', '2', '3', '4', '5', 'flaky']);
    const reasons = Object.fromEntries(store.failures().map((f) => [f.id, f.reason]));
    expect(reasons.gone).toMatch(/HTTP 404/);
    expect(reasons.slow).toMatch(/no complete answer within 1000 ms/);
    expect(reasons.huge).toMatch(/over the limit of 200000 bytes/);
    expect(reasons.file).toMatch(/redirects to file:.*refused/);
    expect(reasons.page).toMatch(/sent text\/html, not an image/);
    expect(Object.keys(reasons).sort()).toEqual(['file', 'gone', 'huge', 'page', 'slow']);

    // The same photos from files, indexed in process: the very same vectors.
    const local = await makeCatalog(GOOD.slice(0, 5).map(([id, shape, colour]) => ({ id, shape, colour })));
    const localIndex = path.join(tempDir(), 'index');
    await buildIndex({ catalogDir: local, indexDir: localIndex, embedder });
    const reference = SqliteStore.open(localIndex);
    const ours = store.loadMatrix('max'), theirs = reference.loadMatrix('max');
    for (const id of ['1', '2', '3', '4', '5']) {
      const a = ours.data.subarray(ours.ids.indexOf(id) * ours.dim, (ours.ids.indexOf(id) + 1) * ours.dim);
      const b = theirs.data.subarray(theirs.ids.indexOf(id) * theirs.dim, (theirs.ids.indexOf(id) + 1) * theirs.dim);
      expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
    }
    reference.close();
    store.close();
  }, 180_000);

  it('reads image URLs from a separate images.csv (filename,link), as in the larger Kaggle dataset', async () => {
    const dir = tempDir('lookalike-url-catalog-');
    writeFileSync(path.join(dir, 'styles.csv'), 'id,articleType\n1,Shirts\n2,Trousers\n3,Watches\n');
    writeFileSync(path.join(dir, 'images.csv'), `filename,link\n1.jpg,${base}/img/1.jpg\n2.jpg,file:///etc/passwd\n`);
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(path.join(dir, 'images', '3.jpg'), images.get('3')!);
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => [i.id, i.imagePath])).toEqual([['1', `${base}/img/1.jpg`], ['3', path.join(dir, 'images', '3.jpg')]]);
    // A file: link is no link: that item has no image, like a missing file.
    expect(catalog.problems.map((p) => [p.kind, p.id])).toEqual([['missing-image', '2']]);
  });
});

describe('queued runs', () => {
  it('lets one of two index commands at once queue the work; the other says so and nothing is queued twice', async () => {
    const catalog = await makeCatalog();
    const location = indexFolder();
    const both = await Promise.allSettled([
      enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: 4 }),
      enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: 4 }),
    ]);
    expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = both.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(isLookalikeError(refused.reason, 'INDEX_LOCKED') || isLookalikeError(refused.reason, 'QUEUE_BUSY')).toBe(true);
    // And later, while the first run's batches wait for a worker: refused with the progress.
    await expect(enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: 4 })).rejects.toMatchObject({ code: 'QUEUE_BUSY', message: /0 of 16 items done/ });
    const queue = new Queue((await queueNameFor(location))!, { connection: redis, prefix: KEY_PREFIX });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 4 });
    await queue.close();

    // The run finishes; a rerun on an unchanged catalog queues nothing.
    const worker = await startWorker({ location, queue: REDIS, embedder });
    await untilFinished(location);
    await worker.close();
    expect(await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32 })).toMatchObject({ queued: 0, jobs: 0, unchanged: 16 });
  }, 180_000);

  it('queues only new items and changed images on a rerun, refreshes metadata without embedding, and removes what left', async () => {
    const rows: Array<[string, string, string]> = GOOD.slice(0, 4).map(([id]) => [id, 'Shirts', `${base}/img/${id}.jpg`]);
    const location = indexFolder();
    await enqueueIndex({ catalogDir: urlCatalog(rows), location, queue: REDIS, settings: FP32, fetch: fetchLimits });
    const worker = await startWorker({ location, queue: REDIS, embedder, fetch: fetchLimits });
    await untilFinished(location);
    const before = SqliteStore.open(location);
    const vectorOf = (s: SqliteStore, id: string) => { const m = s.loadMatrix('max'); return m.data.slice(m.ids.indexOf(id) * m.dim, (m.ids.indexOf(id) + 1) * m.dim); };
    const v3 = vectorOf(before, '3');
    before.close();

    const next: Array<[string, string, string]> = [
      ['1', 'Tshirts', `${base}/img/1.jpg`], // metadata only
      ['2', 'Shirts', `${base}/img/6.jpg`], // another image
      ['3', 'Shirts', `${base}/img/3.jpg`], // unchanged
      ['5', 'Shirts', `${base}/img/5.jpg`], // new
    ]; // 4 left the catalog
    const report = await enqueueIndex({ catalogDir: urlCatalog(next), location, queue: REDIS, settings: FP32, fetch: fetchLimits });
    expect(report).toMatchObject({ queued: 2, removed: 1, unchanged: 2 });
    await untilFinished(location);
    await worker.close();
    const after = SqliteStore.open(location);
    expect([...after.embeddedIds()].sort()).toEqual(['1', '2', '3', '5']);
    expect(after.getItem('1')!.metadata.articleType).toBe('Tshirts');
    expect(vectorOf(after, '3')).toEqual(v3);
    expect(vectorOf(after, '2')).not.toEqual(vectorOf(after, '1'));
    after.close();

    // Another photo under the same URL (a new ETag): only that item is queued again.
    const original = images.get('3')!;
    images.set('3', await drawProduct('trousers', '#d22'));
    try {
      const replaced = await enqueueIndex({ catalogDir: urlCatalog(next), location, queue: REDIS, settings: FP32, fetch: fetchLimits });
      expect(replaced).toMatchObject({ queued: 1, changed: 1, unchanged: 3 });
      const worker2 = await startWorker({ location, queue: REDIS, embedder, fetch: fetchLimits });
      await untilFinished(location);
      await worker2.close();
      const last = SqliteStore.open(location);
      expect(vectorOf(last, '3')).not.toEqual(v3);
      expect((await last.imageSources()).get('3')!.stamp).toMatch(/^etag:"[0-9a-f]{32}"$/);
      last.close();
      expect(await enqueueIndex({ catalogDir: urlCatalog(next), location, queue: REDIS, settings: FP32, fetch: fetchLimits })).toMatchObject({ queued: 0, changed: 0 });
    } finally {
      images.set('3', original);
    }
  }, 180_000);

  it('refuses a worker whose model differs from the index, and bad or unreachable Redis URLs in one line', async () => {
    const catalog = await makeCatalog();
    const location = indexFolder();
    await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32 });
    const store = SqliteStore.open(location);
    store.setManifest({ ...store.getManifest()!, weightsId: 'resnet50-imagenet@000000000000' });
    store.close();
    await expect(startWorker({ location, queue: REDIS, embedder })).rejects.toMatchObject({ code: 'MODEL_MISMATCH' });
    await expect(enqueueIndex({ catalogDir: catalog, location, queue: 'http://127.0.0.1:6379' })).rejects.toMatchObject({ code: 'QUEUE_URL_INVALID' });
    await expect(enqueueIndex({ catalogDir: catalog, location, queue: 'redis://127.0.0.1:1' })).rejects.toMatchObject({ code: 'QUEUE_UNREACHABLE', message: /127\.0\.0\.1:1 \(ECONNREFUSED\)/ });
  }, 60_000);
});

describe('a new index in the default int8 over the queue', () => {
  it('is calibrated by the enqueuing command; a worker rebuilds that model and writes the vectors an in-process index gets', async () => {
    const catalog = await makeCatalog();
    const location = indexFolder();
    const report = await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, batchSize: 8 });
    expect(report).toMatchObject({ queued: 16 });
    const queued = SqliteStore.open(location, { readonly: true });
    const manifest = queued.getManifest()!;
    queued.close();
    expect(manifest.settings.precision).toBe('int8');
    expect(manifest.calibration).toMatchObject({ method: 'minmax', images: 16 });
    // The worker builds its own model from the index's calibration (no backbone passed in);
    // the shared float32 one is refused: another model, whatever its weights.
    await expect(startWorker({ location, queue: REDIS, embedder })).rejects.toMatchObject({ code: 'MODEL_MISMATCH', message: /int8/ });
    const worker = await startWorker({ location, queue: REDIS });
    try {
      expect((await untilFinished(location)).done).toBe(16);
    } finally {
      await worker.close();
    }
    const inProcess = path.join(tempDir(), 'index');
    await buildIndex({ catalogDir: catalog, indexDir: inProcess });
    const [a, b] = [location, inProcess].map((dir) => {
      const store = SqliteStore.open(dir, { readonly: true });
      try { return { manifest: store.getManifest()!, m: store.loadMatrix('max') }; } finally { store.close(); }
    });
    expect(b.manifest.calibration).toEqual(a.manifest.calibration);
    expect(a.m.ids.slice().sort()).toEqual(b.m.ids.slice().sort());
    for (const id of a.m.ids) {
      const ra = a.m.ids.indexOf(id), rb = b.m.ids.indexOf(id);
      expect(Array.from(a.m.data.subarray(ra * a.m.dim, (ra + 1) * a.m.dim))).toEqual(Array.from(b.m.data.subarray(rb * b.m.dim, (rb + 1) * b.m.dim)));
    }
  }, 240_000);
});

describe('several photos per product over the queue', () => {
  it('queues each photo as an item of its own, adds and removes photos on a rerun, and stores what indexing in process stores', async () => {
    const catalog = await makeCatalog(GOOD.slice(0, 3).map(([id, shape, colour]) => ({ id, shape, colour })));
    const img = (name: string) => path.join(catalog, 'images', name);
    copyFileSync(img('2.jpg'), img('1_2.jpg'));
    mkdirSync(img('3'));
    copyFileSync(img('1.jpg'), img('3/back.jpg'));
    const location = indexFolder();
    expect(await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: 2 })).toMatchObject({ queued: 5, removed: 0 });
    let worker = await startWorker({ location, queue: REDIS, embedder });
    expect(await untilFinished(location)).toMatchObject({ total: 5, done: 5, failed: 0 });
    await worker.close();
    const inProcess = path.join(tempDir(), 'index');
    await buildIndex({ catalogDir: catalog, indexDir: inProcess, embedder });
    const ids = (dir: string) => [...SqliteStore.open(dir).embeddedIds()].sort();
    expect(ids(location)).toEqual(['1', '1#images/1_2.jpg', '2', '3', '3#images/3/back.jpg']);
    expect(ids(location)).toEqual(ids(inProcess));

    // A photo removed and another added: only the new one is queued, the removed one dropped.
    rmSync(img('1_2.jpg'));
    copyFileSync(img('3.jpg'), img('2_2.jpg'));
    expect(await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32 })).toMatchObject({ queued: 1, removed: 1 });
    worker = await startWorker({ location, queue: REDIS, embedder });
    expect(await untilFinished(location)).toMatchObject({ total: 1, done: 1, failed: 0 });
    await worker.close();
    expect(ids(location)).toEqual(['1', '2', '2#images/2_2.jpg', '3', '3#images/3/back.jpg']);
  });
});

describe('the queue on the command line', () => {
  it('index --detach queues and returns, status shows the progress, and a dead Redis is one line', async () => {
    const catalog = await makeCatalog();
    const location = indexFolder();
    const down = runCli(['index', catalog, '--index', location, '--queue', 'redis://127.0.0.1:1']);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/cannot reach Redis at 127\.0\.0\.1:1 .*\[QUEUE_UNREACHABLE\]/);

    const queued = runCli(['index', catalog, '--index', location, '--queue', REDIS, '--detach', '--precision', 'fp32']);
    expect(queued.code).toBe(0);
    expect(queued.stdout).toMatch(/queued 16 item\(s\) in 1 batch\(es\)/);
    const waiting = runCli(['status', '--index', location, '--queue', REDIS]);
    expect(waiting.stdout).toMatch(/in progress/);
    expect(waiting.stdout).toMatch(/0\/16 items/);

    const worker = await startWorker({ location, queue: REDIS, embedder });
    await untilFinished(location);
    await worker.close();
    const done = runCli(['status', '--index', location, '--queue', REDIS, '--json']);
    expect(JSON.parse(done.stdout)).toMatchObject({ finished: true, total: 16, done: 16, failed: 0 });
  }, 180_000);
});
