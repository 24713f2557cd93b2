/**
 * The deployment of deploy/compose.yaml, without containers (none can be built on the
 * project's machines): every service of the compose file runs as a process here, with the
 * compose file's own command and environment, read from the file. Only what differs between
 * a compose network and one machine is replaced: host names and ports (real PostgreSQL,
 * Redis database LOOKALIKE_TEST_REDIS, ports 43100-43199), the index name (a fresh one),
 * the catalog mount (the indexer reads it at one path, workers and replicas at another, as
 * on machines that mount a share at different places), and, to keep the test short,
 * the staleness bound, the drain and the batch size.
 *
 * Then it is exercised as an operator would: index through the queue while one worker is
 * killed with -9, search both replicas, kill a replica and start it again, cut the
 * database for longer than the staleness bound (readiness 503, liveness 200, searches
 * still answered), bring it back (ready again), scrape /metrics of replicas and workers,
 * and stop everything with SIGTERM (readiness fails first, exit 0).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { Redis } from 'ioredis';
import { drawProduct, makeCatalog, tempDir, type FixtureItem, type Shape } from '../helpers/fixtures.js';
import { dropIndex, freshIndexName, PG_URL } from '../helpers/pg.js';
import { OutageProxy } from '../helpers/outage.js';
import { createProgram } from '../../src/cli/program.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const REDIS = process.env.LOOKALIKE_TEST_REDIS ?? 'redis://127.0.0.1:6379/5';
const NAME = freshIndexName('topology');
const PORTS = { 'replica-1': 43111, 'replica-2': 43112, 'worker-1': 43121, 'worker-2': 43122 } as Record<string, number>;
/** Shorter than compose's 30 s, so that the cut below (longer than it) stays short. */
const MAX_STALENESS_S = 2;
const CUT_MS = 5000;

interface ComposeService { command?: string[]; environment?: Record<string, string> }
const compose = parse(readFileSync(path.join(ROOT, 'deploy', 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };

const database = new URL(PG_URL);
const proxy = new OutageProxy({ host: database.hostname, port: Number(database.port || 5432) });
const work = tempDir('lookalike-topology-');
/** The share as the indexing machine mounts it, and as every other machine does. */
const indexerMount = path.join(work, 'indexer-mount');
const otherMount = path.join(work, 'other-mount');

interface Proc { name: string; child: ChildProcess; lines: string[]; stderr: string[]; exited: Promise<number | null> }
const procs = new Map<string, Proc>();
const timings: Record<string, number> = {};
const t0 = Date.now();
const mark = (what: string) => { timings[what] = (Date.now() - t0) / 1000; };

/** The compose service's environment on this machine (see the file's header for what changes). */
function environmentOf(service: string): Record<string, string> {
  const env: Record<string, string> = { ...compose.services[service].environment };
  const replica = service.startsWith('replica');
  env.LOOKALIKE_STORE = replica ? proxy.url(PG_URL) : PG_URL;
  env.LOOKALIKE_INDEX = NAME;
  env.LOOKALIKE_QUEUE = REDIS;
  if (env.LOOKALIKE_CATALOG_ROOT) env.LOOKALIKE_CATALOG_ROOT = otherMount;
  if (env.HOST) env.HOST = '127.0.0.1';
  if (env.PORT) env.PORT = String(PORTS[service]);
  if (env.LOOKALIKE_METRICS_PORT) env.LOOKALIKE_METRICS_PORT = String(PORTS[service]);
  if (env.LOOKALIKE_METRICS_HOST) env.LOOKALIKE_METRICS_HOST = '127.0.0.1';
  if (env.LOOKALIKE_MAX_STALENESS) env.LOOKALIKE_MAX_STALENESS = String(MAX_STALENESS_S);
  if (env.LOOKALIKE_DRAIN_SECONDS) env.LOOKALIKE_DRAIN_SECONDS = '1';
  if (service === 'indexer') env.LOOKALIKE_BATCH = '4';
  return env;
}

function start(service: string): Proc {
  const command = (compose.services[service].command ?? []).map((a) => (a === '/catalog' ? indexerMount : a));
  // Nothing from this shell's own LOOKALIKE_* variables: only the compose file's.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LOOKALIKE_') && k !== 'PORT' && k !== 'HOST'));
  const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src/cli/main.ts'), ...command], {
    cwd: work, env: { ...inherited, ...environmentOf(service) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: Proc = { name: service, child, lines: [], stderr: [], exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  let pending = '';
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    const parts = pending.split('\n');
    pending = parts.pop()!;
    proc.lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => proc.stderr.push(d.toString()));
  procs.set(service, proc);
  return proc;
}

/** The JSON log records of a serve or worker process (every stdout line must be one). */
function records(proc: Proc): Array<{ time: string; msg: string; level: number; service: string }> {
  return proc.lines.map((l) => JSON.parse(l) as { time: string; msg: string; level: number; service: string });
}

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, limitMs: number, everyMs = 100): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await Promise.resolve(check()).catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() - started > limitMs) {
      const logs = [...procs.values()].map((p) => `--- ${p.name}\n${p.lines.slice(-8).join('\n')}\n${p.stderr.join('').slice(-800)}`).join('\n');
      throw new Error(`${what}: not within ${limitMs} ms\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const base = (service: string) => `http://127.0.0.1:${PORTS[service]}`;
const statusOf = async (url: string) => (await fetch(url)).status;
const metricsOf = async (service: string) => (await fetch(`${base(service)}/metrics`)).text();

/** The value of one series in Prometheus text (labels in the order prom-client writes them). */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function searchByPhoto(service: string, photo: Buffer): Promise<Array<{ id: string; score: number }>> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(photo)], { type: 'image/jpeg' }), 'q.jpg');
  form.append('k', '5');
  const res = await fetch(`${base(service)}/api/search`, { method: 'POST', body: form });
  expect(res.status).toBe(200);
  return ((await res.json()) as { results: Array<{ id: string; score: number }> }).results;
}

/** 48 products: 4 shapes x 12 colours. */
function catalogItems(): FixtureItem[] {
  const colours = ['#d22', '#23c', '#2a3', '#111', '#e80', '#a3c', '#0aa', '#886', '#f6a', '#555', '#9c2', '#36f'];
  const article: Record<Shape, [string, string, string]> = {
    shirt: ['Apparel', 'Topwear', 'Shirts'], trousers: ['Apparel', 'Bottomwear', 'Trousers'],
    watch: ['Accessories', 'Watches', 'Watches'], bag: ['Accessories', 'Bags', 'Handbags'],
  };
  let id = 5000;
  return (Object.keys(article) as Shape[]).flatMap((shape) => colours.map((colour) => {
    const [masterCategory, subCategory, articleType] = article[shape];
    return { id: String(id++), shape, colour, metadata: { gender: 'Women', masterCategory, subCategory, articleType, baseColour: colour, season: 'Summer', year: '2012', usage: 'Casual', productDisplayName: `${articleType} ${colour}` } };
  }));
}

beforeAll(async () => {
  await proxy.start();
  mkdirSync(otherMount, { recursive: true });
  await makeCatalog(catalogItems(), { dir: indexerMount });
  // The same share, mounted elsewhere on the other machines.
  await makeCatalog(catalogItems(), { dir: otherMount });
});

/** Batches in progress in this run's queue (BullMQ's active list; the run record names the index). */
async function activeBatches(): Promise<number> {
  const redis = new Redis(REDIS);
  try {
    for (const key of (await redis.keys('lookalike:index-*')).filter((k) => k.endsWith(':lk:run'))) {
      if ((await redis.hget(key, 'index'))?.includes(NAME)) return redis.llen(`${key.slice(0, -':lk:run'.length)}:active`);
    }
    return 0;
  } finally {
    redis.disconnect();
  }
}

afterAll(async () => {
  for (const p of procs.values()) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all([...procs.values()].map((p) => p.exited));
  await proxy.stop();
  await dropIndex(PG_URL, NAME).catch(() => {});
  const redis = new Redis(REDIS);
  const keys = await redis.keys('lookalike:index-*');
  // Only this run's queue (its index name is in the run record).
  for (const key of keys.filter((k) => k.endsWith(':lk:run'))) {
    if ((await redis.hget(key, 'index'))?.includes(NAME)) {
      const prefix = key.slice(0, -':lk:run'.length);
      const mine = await redis.keys(`${prefix}:*`);
      if (mine.length) await redis.del(...mine);
    }
  }
  redis.disconnect();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
  writeFileSync(path.join(ROOT, 'test-artifacts', 'deploy-topology-timings.json'), `${JSON.stringify(timings, null, 2)}\n`);
});

describe('deploy/compose.yaml as processes', () => {
  it('uses only settings the CLI knows, and every role of the topology', () => {
    const known = new Set(createProgram().commands.flatMap((c) => c.options.map((o) => o.envVar).filter(Boolean)));
    for (const name of ['indexer', 'worker-1', 'worker-2', 'replica-1', 'replica-2']) {
      for (const variable of Object.keys(compose.services[name].environment ?? {})) expect(known, `${name}: ${variable}`).toContain(variable);
    }
    expect(Object.keys(compose.services).sort()).toEqual(['indexer', 'postgres', 'redis', 'replica-1', 'replica-2', 'worker-1', 'worker-2']);
  });

  it('indexes through the queue, serves on two replicas, survives kills and a database cut, and reports it in /metrics', async () => {
    // --- the one-shot indexer queues the catalog and waits for workers
    const indexer = start('indexer');
    await until('the indexer queued the catalog', () => indexer.lines.some((l) => /queued 48 item\(s\) in 12 batch\(es\)/.test(l)), 120_000);
    mark('indexer queued 48 items');
    // From now on the catalog exists only where the other machines mount it.
    renameSync(indexerMount, `${indexerMount}-unmounted`);

    // --- two workers; the first is killed (-9) once it has written one batch, while it holds
    // another (worker-2 starts after the kill: which batches worker-1 held is then certain, so
    // the take-over below does not depend on timing).
    const w1 = start('worker-1');
    await until('worker-1 wrote a batch', () => records(w1).some((r) => /^batch .*: \d+ embedded/.test(r.msg)), 120_000, 20);
    await until('worker-1 holds a batch', async () => (await activeBatches()) > 0, 60_000, 50);
    w1.child.kill('SIGKILL');
    mark('worker-1 killed after its first batch, holding another');
    const w2 = start('worker-2');
    expect(await indexer.exited).toBe(0);
    mark('indexer finished (every batch embedded)');
    expect(indexer.lines.join('\n')).toMatch(/run [\w-]+: 48 embedded, 0 failed of 48/);
    // worker-2 took the killed worker's batch over, and said so.
    expect(records(w2).some((r) => /taking it over/.test(r.msg))).toBe(true);

    // --- two replicas
    const r1 = start('replica-1');
    const r2 = start('replica-2');
    await until('both replicas ready', async () => (await statusOf(`${base('replica-1')}/api/health/ready`)) === 200 && (await statusOf(`${base('replica-2')}/api/health/ready`)) === 200, 120_000, 250);
    mark('both replicas ready');
    const photo = await drawProduct('shirt', '#d22');
    const [a, b] = [await searchByPhoto('replica-1', photo), await searchByPhoto('replica-2', photo)];
    expect(a.map((h) => h.id)).toEqual(b.map((h) => h.id));
    expect(a.map((h) => h.score)).toEqual(b.map((h) => h.score));
    expect(a[0].id).toBe('5000');
    // Photos from the replicas' own mount of the catalog (the indexer's path is gone).
    for (const r of ['replica-1', 'replica-2']) {
      const image = await fetch(`${base(r)}/images/5013`);
      expect(image.status).toBe(200);
      expect(Buffer.from(await image.arrayBuffer()).equals(readFileSync(path.join(otherMount, 'images', '5013.jpg')))).toBe(true);
    }

    // --- a short load on both, then their metrics
    const loadStarted = Date.now();
    await Promise.all(['replica-1', 'replica-2'].map(async (r) => {
      for (let i = 0; i < 10; i++) await searchByPhoto(r, await drawProduct(i % 2 ? 'bag' : 'watch', '#23c'));
      for (let i = 0; i < 20; i++) expect((await fetch(`${base(r)}/api/items/${5000 + i}/similar?k=5`)).status).toBe(200);
    }));
    timings['short load: 2 x (10 photo + 20 item searches), s'] = (Date.now() - loadStarted) / 1000;
    const replicaMetrics = await metricsOf('replica-1');
    const workerMetrics = await metricsOf('worker-2');
    mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
    writeFileSync(path.join(ROOT, 'test-artifacts', 'metrics-replica-1.txt'), replicaMetrics);
    writeFileSync(path.join(ROOT, 'test-artifacts', 'metrics-worker-2.txt'), workerMetrics);
    expect(metric(replicaMetrics, 'lookalike_http_request_duration_seconds_count{method="POST",route="/api/search",status="200"}')).toBeGreaterThanOrEqual(11);
    expect(metric(replicaMetrics, 'lookalike_http_request_duration_seconds_count{method="GET",route="/api/items/:id/similar",status="200"}')).toBe(20);
    expect(metric(replicaMetrics, 'lookalike_index_items')).toBe(48);
    const health = (await (await fetch(`${base('replica-1')}/api/health`)).json()) as { index: { generation: number } };
    expect(metric(replicaMetrics, 'lookalike_index_generation')).toBe(health.index.generation);
    expect(metric(replicaMetrics, 'lookalike_replica_lag_seconds')).toBeLessThan(MAX_STALENESS_S);
    expect(metric(replicaMetrics, 'lookalike_inference_refused_total')).toBe(0);
    expect(metric(replicaMetrics, 'lookalike_inference_queue_depth')).toBe(0);
    expect(metric(replicaMetrics, 'lookalike_ready')).toBe(1);
    expect(metric(workerMetrics, 'lookalike_worker_batches_taken_back_total')).toBeGreaterThanOrEqual(1);
    expect(metric(workerMetrics, 'lookalike_worker_images_total{outcome="embedded"}')).toBeGreaterThanOrEqual(4);
    expect(metric(workerMetrics, 'lookalike_worker_images_total{outcome="failed"}')).toBe(0);
    expect(metric(workerMetrics, 'lookalike_worker_fetch_failures_total{source="file"}')).toBe(0);
    expect(metric(workerMetrics, 'lookalike_worker_images_per_second')).toBeGreaterThan(0);

    // --- a replica killed with -9: the other answers; started again, it is ready again
    r2.child.kill('SIGKILL');
    await r2.exited;
    expect((await searchByPhoto('replica-1', photo))[0].id).toBe('5000');
    const restarted = Date.now();
    start('replica-2');
    await until('replica-2 ready again', async () => (await statusOf(`${base('replica-2')}/api/health/ready`)) === 200, 120_000, 250);
    timings['replica-2 restarted to ready, s'] = (Date.now() - restarted) / 1000;

    // --- the database cut for longer than the staleness bound
    await proxy.stop();
    const cut = Date.now();
    for (const r of ['replica-1', 'replica-2']) {
      await until(`${r} not ready during the cut`, async () => (await statusOf(`${base(r)}/api/health/ready`)) === 503, MAX_STALENESS_S * 1000 + 4000);
    }
    timings['database cut to both replicas 503, s'] = (Date.now() - cut) / 1000;
    const notReady = await fetch(`${base('replica-1')}/api/health/ready`);
    const body = (await notReady.json()) as { ready: boolean; reasons: string[]; store: { lagSeconds: number; generation: number; maxStalenessSeconds: number } };
    expect(body.ready).toBe(false);
    expect(body.store.lagSeconds).toBeGreaterThanOrEqual(MAX_STALENESS_S);
    expect(body.store.maxStalenessSeconds).toBe(MAX_STALENESS_S);
    expect(body.store.generation).toBe(health.index.generation);
    expect(body.reasons.join(' ')).toMatch(/last confirmed current/);
    // Alive, and still answering from memory.
    expect(await statusOf(`${base('replica-1')}/api/health/live`)).toBe(200);
    const old = await fetch(`${base('replica-1')}/api/health`);
    expect(old.status).toBe(200);
    expect(((await old.json()) as { replica: { lagSeconds: number } }).replica.lagSeconds).toBeGreaterThanOrEqual(MAX_STALENESS_S);
    expect((await fetch(`${base('replica-2')}/api/items/5001/similar?k=3`)).status).toBe(200);
    expect(metric(await metricsOf('replica-1'), 'lookalike_ready')).toBe(0);
    expect(metric(await metricsOf('replica-1'), 'lookalike_replica_lag_seconds')).toBeGreaterThanOrEqual(MAX_STALENESS_S);
    await new Promise((r) => setTimeout(r, Math.max(0, CUT_MS - (Date.now() - cut))));
    await proxy.start();
    const back = Date.now();
    for (const r of ['replica-1', 'replica-2']) {
      await until(`${r} ready after the cut`, async () => (await statusOf(`${base(r)}/api/health/ready`)) === 200, 30_000);
    }
    timings['database back to both replicas ready, s'] = (Date.now() - back) / 1000;
    await until('replica-1 logged the reconnection', () => records(r1).some((r) => /store: reachable again/.test(r.msg)), 5000);

    // --- every line of every serve and worker process: one JSON record with a timestamp
    for (const p of [r1, w1, w2, procs.get('replica-2')!]) {
      for (const r of records(p)) expect(Number.isNaN(Date.parse(r.time)), `${p.name}: ${r.msg}`).toBe(false);
    }

    // --- SIGTERM: readiness fails first, then the process exits 0 within its bound
    const stopping = Date.now();
    r1.child.kill('SIGTERM');
    await until('replica-1 not ready while draining', async () => (await statusOf(`${base('replica-1')}/api/health/ready`)) === 503, 2000, 20);
    expect(await statusOf(`${base('replica-1')}/api/health/live`)).toBe(200);
    expect(await r1.exited).toBe(0);
    timings['replica-1 SIGTERM to exit, s'] = (Date.now() - stopping) / 1000;
    w2.child.kill('SIGTERM');
    expect(await w2.exited).toBe(0);
    expect(records(w2).at(-1)?.msg).toBe('stopped');
    mark('total');
  }, 300_000);
});
