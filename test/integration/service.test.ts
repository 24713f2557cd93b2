/**
 * Running as a service, the parts a single machine can show: settings from flags or
 * environment variables (one table in the README, checked at start), liveness apart from
 * readiness, the SIGTERM drain (readiness fails first, a request in flight finishes),
 * Prometheus metrics, JSON log lines, `--catalog-root` and `lookalike prepare`.
 * The whole topology (PostgreSQL, Redis, workers, replicas) is deploy-topology.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { createServer } from '../../src/server/app.js';
import { createProgram } from '../../src/cli/program.js';
import { relocateImage } from '../../src/catalog/relocate.js';
import { calibrationId } from '../../src/model/quantise.js';
import { drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { dropIndex, freshIndexName, PG_URL } from '../helpers/pg.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/types.js';
import { runCli } from '../helpers/cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let catalog: string;
let indexDir: string;
let work: string;

beforeAll(async () => {
  work = tempDir('lookalike-service-');
  catalog = await makeCatalog();
  indexDir = path.join(work, 'index');
  await buildIndex({ catalogDir: catalog, indexDir });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(catalog, { recursive: true, force: true });
});

describe('settings from flags or the environment', () => {
  const commands = ['serve', 'worker', 'index', 'prepare'];
  const program = createProgram();

  it('gives every setting of serve, worker, index and prepare an environment variable, listed in the README table', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('| Setting'), readme.indexOf('\n\n', readme.indexOf('| Setting')));
    for (const name of commands) {
      const command = program.commands.find((c) => c.name() === name)!;
      for (const option of command.options) {
        if (option.long === '--json') continue;
        expect(option.envVar, `${name} ${option.long}`).toBeDefined();
        expect(table, `README table: ${name} ${option.long}`).toContain(`\`${option.envVar}\``);
        expect(table, `README table: ${option.long}`).toContain(`\`${option.long}\``);
        expect(command.helpInformation().replace(/\s+/g, ' '), `${name} --help`).toContain(`env: ${option.envVar}`);
      }
    }
  });

  it('reads PORT and HOST, and refuses a bad value from the environment as from a flag (BAD_OPTION, exit 1)', () => {
    const bad = runCli(['serve', '--index', indexDir], { env: { PORT: 'eighty' } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/value 'eighty' from env 'PORT' is invalid.*\[BAD_OPTION\]/);
    const search = runCli(['serve', '--index', indexDir], { env: { LOOKALIKE_SEARCH: 'fastest' } });
    expect(search.code).toBe(1);
    expect(search.stderr).toMatch(/LOOKALIKE_SEARCH.*\[BAD_OPTION\]/);
  });

  it('takes 1/0, true/false, yes/no for on/off settings and refuses anything else', () => {
    const r = runCli(['index', catalog, '--index', path.join(work, 'other')], { env: { LOOKALIKE_ALLOW_REMOVE: 'maybe' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/LOOKALIKE_ALLOW_REMOVE="maybe" is not on or off.*\[BAD_OPTION\]/);
  });

  it('checks a queue URL and a catalog root from the environment at start, with their own codes', () => {
    const queue = runCli(['worker', '--index', indexDir], { env: { LOOKALIKE_QUEUE: 'http://127.0.0.1:6379' } });
    expect(queue.code).toBe(1);
    expect(queue.stderr).toMatch(/\[QUEUE_URL_INVALID\]/);
    const root = runCli(['serve', '--index', indexDir, '--port', '0'], { env: { LOOKALIKE_CATALOG_ROOT: path.join(work, 'not-mounted') } });
    expect(root.code).toBe(1);
    expect(root.stderr).toMatch(/\[CATALOG_NOT_FOUND\]/);
  });
});

describe('health, drain and metrics', () => {
  it('tells liveness from readiness: not ready while the model loads, ready after, 503 once draining', async () => {
    const lookalike = await Lookalike.open(indexDir);
    const app = await createServer(lookalike, { webRoot: false });
    try {
      const ready = () => app.inject({ method: 'GET', url: '/api/health/ready' });
      expect((await app.inject({ method: 'GET', url: '/api/health/live' })).json()).toEqual({ status: 'ok' });
      const loading = await ready();
      if ((await Promise.race([app.modelReady, Promise.resolve(undefined)])) === undefined) {
        expect(loading.statusCode).toBe(503);
        expect(loading.json().reasons).toContain('the model is still loading');
      }
      await app.modelReady;
      expect((await ready()).statusCode).toBe(200);
      expect((await ready()).json()).toMatchObject({ ready: true, reasons: [], draining: false });
      app.drain();
      const draining = await ready();
      expect(draining.statusCode).toBe(503);
      expect(draining.json()).toMatchObject({ ready: false, draining: true, reasons: ['the server is shutting down'] });
      // Everything else still answers until close(): a load balancer has time to notice.
      expect((await app.inject({ method: 'GET', url: '/api/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/api/health/live' })).statusCode).toBe(200);
    } finally {
      await app.close();
      await lookalike.close();
    }
  });

  it('counts requests by route pattern and status, and 503s of a full inference queue, in /metrics', async () => {
    const lookalike = await Lookalike.open(indexDir);
    const app = await createServer(lookalike, { webRoot: false, queue: { concurrency: 1, maxWaiting: 0 } });
    try {
      await app.modelReady;
      await app.inject({ method: 'GET', url: '/api/items/1000/similar' });
      await app.inject({ method: 'GET', url: '/api/items/1001/similar' });
      await app.inject({ method: 'GET', url: '/api/items/nope/similar' });
      // One search in the network, a second refused (no waiting place).
      const photo = await drawProduct('shirt', '#d22');
      const upload = () => {
        const boundary = 'x-boundary';
        const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`), photo, Buffer.from(`\r\n--${boundary}--\r\n`)]);
        return app.inject({ method: 'POST', url: '/api/search', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: body });
      };
      const statuses = (await Promise.all([upload(), upload()])).map((r) => r.statusCode).sort();
      expect(statuses).toEqual([200, 503]);
      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(text).toContain('lookalike_http_request_duration_seconds_count{method="GET",route="/api/items/:id/similar",status="200"} 2');
      expect(text).toContain('lookalike_http_request_duration_seconds_count{method="GET",route="/api/items/:id/similar",status="404"} 1');
      expect(text).toContain('lookalike_http_request_duration_seconds_count{method="POST",route="/api/search",status="503"} 1');
      expect(text).toMatch(/^lookalike_inference_refused_total 1$/m);
      expect(text).toMatch(/^lookalike_index_items 16$/m);
      expect(text).toMatch(/^lookalike_ready 1$/m);
      expect(text).toMatch(/^lookalike_process_resident_memory_bytes \d+/m);
    } finally {
      await app.close();
      await lookalike.close();
    }
  });

  it('on SIGTERM: readiness fails first, requests in flight finish, and the server exits 0 within its bound', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'serve', '--index', indexDir], {
      cwd: ROOT, env: { ...process.env, PORT: '43201', HOST: '127.0.0.1', LOOKALIKE_DRAIN_SECONDS: '1', LOOKALIKE_SHUTDOWN_SECONDS: '10', LOOKALIKE_LOG_FORMAT: 'json', LOOKALIKE_SEARCH_QUEUE: '200' },
    });
    const messages: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const record = JSON.parse(line) as { time: string; msg: string };
      expect(Number.isNaN(Date.parse(record.time))).toBe(false);
      messages.push(record.msg);
    });
    const base = 'http://127.0.0.1:43201';
    const photo = await drawProduct('bag', '#23c');
    const search = async () => {
      const form = new FormData();
      form.append('image', new Blob([new Uint8Array(photo)], { type: 'image/jpeg' }), 'q.jpg');
      return (await fetch(`${base}/api/search`, { method: 'POST', body: form })).status;
    };
    try {
      await expect.poll(async () => (await fetch(`${base}/api/health/ready`).catch(() => undefined))?.status, { timeout: 60_000, interval: 200 }).toBe(200);
      // 120 photo searches (one at a time in the network, a few seconds of work) in flight when SIGTERM comes.
      const answered: number[] = [];
      let signalled = Infinity;
      const searches = Promise.all(Array.from({ length: 120 }, async () => {
        const status = await search();
        answered.push(Date.now() - signalled);
        return status;
      }));
      // SIGTERM once the server has read every one (each is answered, running or waiting).
      await expect.poll(async () => {
        const { queue } = (await (await fetch(`${base}/api/health`)).json()) as { queue: { running: number; waiting: number } };
        return queue.running + queue.waiting + answered.length;
      }, { timeout: 30_000, interval: 10 }).toBe(120);
      signalled = Date.now();
      child.kill('SIGTERM');
      await expect.poll(async () => (await fetch(`${base}/api/health/ready`)).status, { timeout: 800, interval: 20 }).toBe(503);
      // Other requests still answered during the drain.
      expect((await fetch(`${base}/api/items/1000`)).status).toBe(200);
      expect(await searches).toEqual(Array(120).fill(200));
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(messages.some((m) => m.startsWith('SIGTERM: stopping; not ready from now on'))).toBe(true);
      expect(messages.at(-1)).toBe('stopped');
      // Some were answered after the drain (1 s), once the server had stopped accepting.
      expect(Math.max(...answered.filter(Number.isFinite))).toBeGreaterThan(1000);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('a replica\'s lag behind its database', () => {
  it('grows while a newer generation is not loaded yet, and is back near 0 once it is', async () => {
    const name = freshIndexName('lag');
    const location = `${PG_URL}#${name}`;
    try {
      await buildIndex({ catalogDir: catalog, indexDir: location });
      const replica = await Lookalike.open(location);
      try {
        const fresh = replica.freshness()!;
        expect(fresh.generation).toBe(fresh.storeGeneration);
        expect(fresh.lagSeconds).toBeLessThan(1);
        // Another process writes; the replica's store reads it, but its engine is not rebuilt.
        const writer = await openStore(location);
        await writer.putFile('note.txt', Buffer.from('new'));
        await writer.close();
        await new Promise((r) => setTimeout(r, 600));
        // The store alone reads the change (past the door on purpose: no public call does only that).
        const store = (replica as unknown as { store: Store }).store;
        await store.refresh!();
        await new Promise((r) => setTimeout(r, 600));
        await store.refresh!();
        const behind = replica.freshness()!;
        expect(behind.storeGeneration).toBeGreaterThan(behind.generation);
        // Confirmed current last before the write was seen: the checks since do not count.
        expect(behind.lagSeconds).toBeGreaterThan(1);
        expect(await replica.rebuild()).toBe(true);
        const caughtUp = replica.freshness()!;
        expect(caughtUp.generation).toBe(caughtUp.storeGeneration);
        expect(caughtUp.lagSeconds).toBeLessThan(1);
      } finally {
        await replica.close();
      }
      // A folder index is read directly: no lag to report.
      const folder = await Lookalike.open(indexDir);
      expect(folder.freshness()).toBeUndefined();
      await folder.close();
    } finally {
      await dropIndex(PG_URL, name);
    }
  });
});

describe('catalog images on another machine, and the model prepared ahead', () => {
  it('maps image paths under the indexed root to this machine\'s root, and leaves URLs and outside paths alone', () => {
    expect(relocateImage('/srv/a/images/1.jpg', '/srv/a', '/mnt/share')).toBe('/mnt/share/images/1.jpg');
    expect(relocateImage('/srv/a/images/1.jpg', '/srv/a', undefined)).toBe('/srv/a/images/1.jpg');
    expect(relocateImage('/elsewhere/1.jpg', '/srv/a', '/mnt/share')).toBe('/elsewhere/1.jpg');
    expect(relocateImage('/srv/ab/1.jpg', '/srv/a', '/mnt/share')).toBe('/srv/ab/1.jpg');
    expect(relocateImage('https://cdn.example/1.jpg', '/srv/a', '/mnt/share')).toBe('https://cdn.example/1.jpg');
  });

  it('serves /images/:id from --catalog-root when the catalog is no longer where it was indexed', async () => {
    const moved = `${catalog}-moved`;
    renameSync(catalog, moved);
    try {
      const plain = await Lookalike.open(indexDir);
      const here = await Lookalike.open(indexDir, { catalogRoot: moved });
      const [a, b] = [await createServer(plain, { webRoot: false, warmUp: false }), await createServer(here, { webRoot: false, warmUp: false })];
      try {
        expect((await a.inject({ method: 'GET', url: '/images/1003' })).json().error.code).toBe('CATALOG_IMAGE_MISSING');
        const image = await b.inject({ method: 'GET', url: '/images/1003' });
        expect(image.statusCode).toBe(200);
        expect(image.rawPayload.equals(readFileSync(path.join(moved, 'images', '1003.jpg')))).toBe(true);
      } finally {
        await a.close();
        await b.close();
        await plain.close();
        await here.close();
      }
    } finally {
      renameSync(moved, catalog);
    }
  });

  it('`lookalike prepare` makes the model an index embeds with (int8: quantised for its calibration)', async () => {
    const opened = await Lookalike.open(indexDir);
    const manifest = opened.manifest;
    await opened.close();
    const r = runCli(['prepare', '--index', indexDir, '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { precision: string; weightsId: string; calibration?: string };
    expect(report.weightsId).toBe(manifest.weightsId);
    expect(report.precision).toBe('int8');
    expect(report.calibration).toBe(calibrationId(manifest.calibration!));
    const missing = runCli(['prepare', '--index', path.join(work, 'no-such-index')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\[INDEX_NOT_FOUND\]/);
  });
});
