/**
 * Hostile cases for the surfaces added since the first hardening pass: the job queue
 * (Redis), the shared store (PostgreSQL), catalogs as lists of products, and what a careless
 * operator types. Issue 23, items 1-6, 10, 12 and 13: each case failed before its fix.
 * Real Redis (LOOKALIKE_TEST_REDIS), real PostgreSQL (LOOKALIKE_TEST_PG), real CLI processes
 * where the user meets them, the real CNN (float32, shared) where something is indexed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { readCatalog } from '../../src/catalog/index.js';
import { isLookalikeError, LookalikeError, redactUrl } from '../../src/errors.js';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { Embedder } from '../../src/model/embedder.js';
import { KEY_PREFIX, parseQueueUrl, queueNameFor } from '../../src/queue/connection.js';
import { enqueueIndex } from '../../src/queue/enqueue.js';
import { createServer } from '../../src/server/app.js';
import { describeLocation, indexArgs, parseLocation, storeLocation } from '../../src/store/location.js';
import { openStore } from '../../src/store/open.js';
import { drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';
import { dropIndex, freshIndexName, PG_URL, sql } from '../helpers/pg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const REDIS = process.env.LOOKALIKE_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const redis = new Redis(parseQueueUrl(REDIS).options);
const FP32 = { precision: 'fp32' } as const;
const pg = new URL(PG_URL);
/** The same database, spelled with the other name of this machine. */
const PG_OTHER_SPELLING = PG_URL.replace(`@${pg.hostname}`, `@${pg.hostname === 'localhost' ? '127.0.0.1' : 'localhost'}`);

let embedder: Embedder;
let catalog: string;
const pgIndexes: string[] = [];
const queueNames: string[] = [];
const folders: string[] = [];

beforeAll(async () => {
  embedder = await Embedder.create('resnet50-imagenet');
  catalog = await makeCatalog();
  folders.push(catalog);
}, 120_000);

afterAll(async () => {
  for (const name of queueNames) {
    const q = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
    await q.obliterate({ force: true }).catch(() => {});
    await q.close();
    await redis.del(`${KEY_PREFIX}:${name}:lk:run`, `${KEY_PREFIX}:${name}:lk:counted`);
  }
  redis.disconnect();
  for (const name of pgIndexes) await dropIndex(PG_URL, name).catch(() => {});
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  await embedder?.release();
});

function pgIndex(prefix: string): { name: string; location: string } {
  const name = freshIndexName(prefix);
  pgIndexes.push(name);
  return { name, location: storeLocation(PG_URL, name) };
}

function folder(prefix = 'lookalike-h23-'): string {
  const dir = tempDir(prefix);
  folders.push(dir);
  return dir;
}

/** The CLI's one stderr line, its code, and its exit status (a process of its own, as a user runs it). */
function cli(args: string[], options: { env?: Record<string, string> } = {}): { exit: number | null; code?: string; line: string; stderr: string; stdout: string } {
  const r = runCli(args, { cwd: ROOT, env: options.env });
  const lines = r.stderr.split('\n').filter((l) => l.trim() && !/npm warn|ExperimentalWarning/i.test(l));
  const m = /\[([A-Z_]+)\]$/.exec(lines.at(-1) ?? '');
  return { exit: r.code, code: m?.[1], line: lines.join('\n'), stderr: r.stderr, stdout: r.stdout };
}

/** One line, this code, exit 1. */
function expectOneLine(r: ReturnType<typeof cli>, code: string): void {
  expect(r.line.split('\n'), r.stderr).toHaveLength(1);
  expect(r.line).toMatch(new RegExp(`^lookalike: .*\\[${code}\\]$`));
  expect(r.exit).toBe(1);
}

/** Fails the test instead of hanging it: what used to hang must now settle well before. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms); })]).finally(() => clearTimeout(timer));
}

async function schemaExists(name: string): Promise<boolean> {
  return ((await sql(PG_URL, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [name])).rowCount ?? 0) > 0;
}

describe('the queue URL and the Redis server (items 1, 2, 10)', () => {
  it('1: a Redis database the server lacks is QUEUE_URL_INVALID, exit 1, nothing written anywhere', async () => {
    const { name } = pgIndex('h23db');
    const r = cli(['index', catalog, '--store', PG_URL, '--index', name, '--queue', 'redis://127.0.0.1:6379/99999', '--detach', '--precision', 'fp32']);
    expectOneLine(r, 'QUEUE_URL_INVALID');
    expect(r.line).toMatch(/no database 99999/);
    expect(await schemaExists(name)).toBe(false);
    // Nothing queued into database 0 either (the run would name this index).
    const db0 = new Redis({ ...parseQueueUrl('redis://127.0.0.1:6379').options });
    try {
      for (const key of await db0.keys(`${KEY_PREFIX}:*:lk:run`)) expect(await db0.hget(key, 'index')).not.toContain(name);
    } finally {
      db0.disconnect();
    }
  }, 60_000);

  it('2: a port that accepts connections but never answers is QUEUE_UNREACHABLE after a bounded wait', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => { sockets.push(s); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const out = await within(20_000, 'index --queue against a silent port', enqueueIndex({ catalogDir: catalog, location: path.join(folder(), 'index'), queue: `redis://127.0.0.1:${port}`, settings: FP32 }).then(() => undefined, (e: unknown) => e));
      expect(isLookalikeError(out, 'QUEUE_UNREACHABLE'), String(out)).toBe(true);
      expect((out as LookalikeError).message).toMatch(/no answer within 7\.5 s/);
      expect(Date.now() - started).toBeLessThan(12_000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  }, 30_000);

  it('10: a refused Redis login is QUEUE_AUTH_FAILED, not "unreachable, start redis-server"', () => {
    const r = cli(['status', '--index', folder(), '--queue', 'redis://nobody:wrong-secret@127.0.0.1:6379/3']);
    expectOneLine(r, 'QUEUE_AUTH_FAILED');
    expect(r.line).not.toMatch(/start it|redis-server|wrong-secret/i);
  }, 60_000);
});

describe('one queue per index, whatever the spelling of its location (item 3)', () => {
  it('two runs naming one database @127.0.0.1 and @localhost: the second gets QUEUE_BUSY, status and workers see one queue', async () => {
    const { name, location } = pgIndex('h23q');
    const other = storeLocation(PG_OTHER_SPELLING, name);
    expect(other).not.toBe(location);
    const first = await enqueueIndex({ catalogDir: catalog, location, queue: REDIS, settings: FP32, batchSize: 4 });
    queueNames.push(first.queue);
    expect(first.queued).toBe(16);
    await expect(enqueueIndex({ catalogDir: catalog, location: other, queue: REDIS, settings: FP32, batchSize: 4 })).rejects.toMatchObject({ code: 'QUEUE_BUSY' });
    expect(await queueNameFor(other)).toBe(first.queue);
    expect(await queueNameFor(location)).toBe(first.queue);
    const queue = new Queue(first.queue, { connection: redis, prefix: KEY_PREFIX });
    try {
      expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 4 });
    } finally {
      await queue.close();
    }
    const status = cli(['status', '--store', PG_OTHER_SPELLING, '--index', name, '--queue', REDIS, '--json']);
    expect(status.exit, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: first.run, total: 16 });
  }, 120_000);
});

describe('a replica following a re-index from another catalog folder (item 4)', () => {
  let app: FastifyInstance | undefined;
  let lookalike: Lookalike | undefined;
  afterAll(async () => {
    await app?.close();
    await lookalike?.close();
  });

  it('serves the photos a fresh start would: 200, not 403', async () => {
    const { location } = pgIndex('h23r');
    await buildIndex({ catalogDir: catalog, indexDir: location, embedder });
    lookalike = await Lookalike.open(location);
    app = await createServer(lookalike, { warmUp: false, webRoot: false });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    expect((await fetch(`${base}/images/1000`)).status).toBe(200);

    // The shop moves its catalog: the same products in another folder, one more.
    const moved = folder('lookalike-h23-moved-');
    cpSync(catalog, moved, { recursive: true });
    writeFileSync(path.join(moved, 'images', '2001.jpg'), await drawProduct('bag', '#a3c'));
    writeFileSync(path.join(moved, 'styles.csv'), `${readFileSync(path.join(moved, 'styles.csv'), 'utf8')}2001,Women,Accessories,Bags,Handbags,Purple,Summer,2012,Casual,New bag\n`);
    await buildIndex({ catalogDir: moved, indexDir: location, embedder });
    expect(await lookalike.refresh()).toBe(true);
    for (const id of ['1000', '1015', '2001']) expect((await fetch(`${base}/images/${id}`)).status, id).toBe(200);
  }, 180_000);
});

describe('credentials are never printed, logged or stored (item 5)', () => {
  for (const password of ['pa/ss', 'se#cret', '12/x']) {
    it(`a password with "${password}" in --store is not echoed`, () => {
      const r = cli(['info', '--store', `postgres://someone:${password}@127.0.0.1:5432/test`, '--index', 'h23_secret']);
      expect(r.exit).toBe(1);
      expect(r.line.split('\n')).toHaveLength(1);
      for (const piece of [password, ...password.split(/[/#]/)].filter((p) => p.length >= 3)) expect(r.line).not.toContain(piece);
      expect(r.line).toContain('someone:***@');
    }, 60_000);
  }

  it('a URL catalog\'s user:password@ is left out and reported, never stored nor printed', async () => {
    const dir = folder('lookalike-h23-urls-');
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(path.join(dir, 'images', '1.jpg'), await drawProduct('shirt', '#d22'));
    writeFileSync(path.join(dir, 'styles.csv'), 'id,articleType,link\n1,Shirts,\n2,Shirts,http://shop:top-secret@127.0.0.1:1/img/2.jpg\n3,Shirts,http://shop:top/secret@127.0.0.1:1/img/3.jpg\n');
    const read = await readCatalog(dir);
    expect(read.items.map((i) => i.id)).toEqual(['1']);
    expect(read.problems.map((p) => [p.kind, p.id])).toEqual([['url-with-credentials', '2'], ['url-with-credentials', '3']]);
    expect(JSON.stringify(read.problems)).not.toMatch(/top-secret|top\/secret/);
    const index = path.join(folder(), 'index');
    const report = await buildIndex({ catalogDir: dir, indexDir: index, embedder });
    expect(JSON.stringify(report)).not.toMatch(/secret/);
    const store = await openStore(index);
    try {
      expect(JSON.stringify([store.listItems(), store.failures()])).not.toMatch(/secret/);
    } finally {
      await store.close();
    }
    expect(readFileSync(path.join(index, 'index.sqlite')).includes('secret')).toBe(false);
  }, 120_000);

  it('fuzz: whatever a password holds, no message, location or redaction shows it (fast-check)', () => {
    const unit = fc.constantFrom(...'abcXYZ019'.split(''), '/', '#', '?', '@', ':', '%', ' ', '&', '=', '.', '[', ']');
    // A prefix found nowhere else in the URL, so "contains the password" means a leak.
    const password = fc.string({ unit, minLength: 1, maxLength: 16 }).map((p) => `Qj${p}`);
    let runs = 0;
    fc.assert(fc.property(password, fc.constantFrom('postgres', 'redis'), (pw, scheme) => {
      runs++;
      const url = scheme === 'postgres' ? `postgres://shop:${pw}@127.0.0.1:5432/test` : `redis://shop:${pw}@127.0.0.1:6379/3`;
      const shown: string[] = [redactUrl(url)];
      try {
        if (scheme === 'postgres') {
          const location = storeLocation(url, 'h23_fuzz');
          parseLocation(location);
          shown.push(describeLocation(location), indexArgs(location));
        } else {
          parseQueueUrl(url);
        }
      } catch (err) {
        expect(isLookalikeError(err), String(err)).toBe(true);
        shown.push((err as LookalikeError).message, (err as LookalikeError).publicMessage);
      }
      for (const text of shown) expect(text, text).not.toContain(pw);
    }), { numRuns: 3000, seed: 23 });
    process.stdout.write(`password fuzz: ${runs} cases\n`);
  });

  it('any URL quoted in an error message loses its password', () => {
    const e = new LookalikeError('IMAGE_FETCH_FAILED', { url: 'https://shop:hunter2@cdn.example/a.jpg', reason: 'redirected to http://x:pw/2@h/b.jpg' });
    expect(e.message).not.toMatch(/hunter2|pw\/2/);
    expect(e.message).toContain('https://shop:***@cdn.example/a.jpg');
  });
});

describe('TLS and socket trouble with PostgreSQL: one line, a code, no "bug" (item 6)', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['sslmode=require against a server without TLS', '?sslmode=require', /STORE_TLS_FAILED/],
    ['a CA file that is not there', '?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt', /certificate file \/nonexistent\/ca\.crt.*STORE_TLS_FAILED/],
    ['host=/nonexistent (a socket folder with no server)', '?host=/nonexistent', /STORE_UNREACHABLE/],
  ];
  for (const [what, query, says] of cases) {
    it(what, () => {
      const r = cli(['info', '--store', `${PG_URL}${query}`, '--index', 'h23_tls']);
      expect(r.line.split('\n'), r.stderr).toHaveLength(1);
      expect(r.exit).toBe(1);
      expect(r.line).toMatch(says);
      expect(r.line).not.toMatch(/INTERNAL|This is a bug|SECURITY WARNING/);
    }, 60_000);
  }
});

describe('messages that said the wrong thing (item 10)', () => {
  it('INDEX_NOT_FOUND in PostgreSQL suggests a command that works (--store URL --index NAME)', () => {
    const r = cli(['info', '--store', PG_URL, '--index', 'h23_not_there']);
    expectOneLine(r, 'INDEX_NOT_FOUND');
    expect(r.line).toContain(`\`lookalike index CATALOG --store ${PG_URL} --index h23_not_there\``);
  }, 60_000);

  it('index --size on an existing index does not speak of "this query"', async () => {
    const index = path.join(folder(), 'index');
    await buildIndex({ catalogDir: catalog, indexDir: index, embedder, select: (id) => id === '1000' });
    const r = cli(['index', catalog, '--index', index, '--size', '128x128']);
    expectOneLine(r, 'MODEL_MISMATCH');
    expect(r.line).not.toMatch(/this query/);
    expect(r.line).toMatch(/128x128/);
  }, 120_000);

  describe('over HTTP', () => {
    let app: FastifyInstance;
    let base: string;
    let lookalike: Lookalike;
    beforeAll(async () => {
      const index = path.join(folder(), 'index');
      await buildIndex({ catalogDir: catalog, indexDir: index, embedder, select: (id) => id < '1004' });
      lookalike = await Lookalike.open(index);
      app = await createServer(lookalike, { warmUp: false, webRoot: false });
      base = await app.listen({ port: 0, host: '127.0.0.1' });
    }, 120_000);
    afterAll(async () => {
      await app?.close();
      await lookalike?.close();
    });
    const search = async (body: string) => {
      const res = await fetch(`${base}/api/search`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string } }).error };
    };

    it('search "db" on an index that cannot: the API\'s words, not the CLI\'s flags', async () => {
      const r = await search('{"id": "1000", "search": "db"}');
      expect(r).toMatchObject({ status: 400, error: { code: 'BAD_OPTION' } });
      expect(r.error.message).not.toMatch(/--search|--store|--pooling/);
    });

    it('{"id": null} says the id is null, not empty', async () => {
      const r = await search('{"id": null}');
      expect(r).toMatchObject({ status: 400, error: { code: 'INVALID_REQUEST' } });
      expect(r.error.message).not.toMatch(/empty/);
      expect(r.error.message).toMatch(/"id" is null/);
    });
  });

  it('index --queue does not say "no worker is connected" while a worker is on its way', async () => {
    const index = path.join(folder(), 'index');
    const run = (args: string[]) => {
      const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env: process.env });
      // Both streams: the worker logs on stdout (one JSON line each), index --queue on stderr.
      let output = '';
      const collect = (d: Buffer) => { output += d.toString(); };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      return { child, exited, stderr: () => output };
    };
    // The worker starts first and waits for the index to exist, as operators start them.
    const worker = run(['worker', '--index', index, '--queue', REDIS]);
    try {
      await within(60_000, 'the worker waiting for the index', (async () => { while (!/waiting for/.test(worker.stderr())) await new Promise((r) => setTimeout(r, 200)); })());
      const indexer = run(['index', catalog, '--index', index, '--queue', REDIS, '--precision', 'fp32']);
      const exit = await within(150_000, 'index --queue with a worker', indexer.exited);
      queueNames.push((await queueNameFor(index))!);
      expect(exit, indexer.stderr()).toBe(0);
      expect(indexer.stderr()).not.toMatch(/no worker/);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  }, 240_000);
});

describe('catalogs nothing can be read from, pipes and /proc (item 12)', () => {
  it('a catalog whose every photo is unreadable: CATALOG_NO_READABLE_IMAGE, and no half-made index for info to trip on', async () => {
    const dir = folder('lookalike-h23-broken-');
    writeFileSync(path.join(dir, 'a.jpg'), 'not a photo');
    writeFileSync(path.join(dir, 'b.png'), Buffer.alloc(0));
    const index = path.join(folder(), 'index');
    const r = cli(['index', dir, '--index', index]);
    expectOneLine(r, 'CATALOG_NO_READABLE_IMAGE');
    expect(existsSync(index)).toBe(false);
    const info = cli(['info', '--index', index]);
    expectOneLine(info, 'INDEX_NOT_FOUND');
    expect(info.line).not.toMatch(/lookalike info/);
  }, 120_000);

  it('the same in PostgreSQL leaves no schema behind', async () => {
    const dir = folder('lookalike-h23-broken-');
    writeFileSync(path.join(dir, 'a.jpg'), 'not a photo');
    const { name, location } = pgIndex('h23e');
    await expect(buildIndex({ catalogDir: dir, indexDir: location })).rejects.toMatchObject({ code: 'CATALOG_NO_READABLE_IMAGE' });
    expect(await schemaExists(name)).toBe(false);
  }, 120_000);

  it('styles.csv that is a named pipe: CATALOG_UNREADABLE_CSV at once, no hang', async () => {
    const dir = folder('lookalike-h23-fifo-');
    cpSync(path.join(catalog, 'images'), path.join(dir, 'images'), { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'styles.csv')]);
    const out = await within(10_000, 'reading a catalog whose styles.csv is a pipe', readCatalog(dir).then(() => undefined, (e: unknown) => e));
    expect(isLookalikeError(out, 'CATALOG_UNREADABLE_CSV'), String(out)).toBe(true);
  });

  it('a query photo that is a named pipe: IMAGE_UNSUPPORTED at once, no hang', async () => {
    const index = path.join(folder(), 'index');
    await buildIndex({ catalogDir: catalog, indexDir: index, embedder, select: (id) => id < '1003' });
    const fifo = path.join(folder('lookalike-h23-query-'), 'photo.jpg');
    execFileSync('mkfifo', [fifo]);
    const lookalike = await Lookalike.open(index);
    try {
      const out = await within(10_000, 'searching with a pipe as the photo', lookalike.searchByImage(fifo).then(() => undefined, (e: unknown) => e));
      expect(isLookalikeError(out, 'IMAGE_UNSUPPORTED'), String(out)).toBe(true);
    } finally {
      await lookalike.close();
    }
  }, 60_000);

  it('a photo that is a never-ending /proc file is recorded as unreadable, no hang', async (ctx) => {
    // /proc/kmsg claims to be an empty regular file and blocks any reader (root only).
    try { execFileSync('test', ['-r', '/proc/kmsg']); } catch { ctx.skip(); }
    const dir = folder('lookalike-h23-proc-');
    writeFileSync(path.join(dir, 'a.jpg'), await drawProduct('shirt', '#d22'));
    symlinkSync('/proc/kmsg', path.join(dir, 'b.jpg'));
    const report = await within(60_000, 'indexing a catalog with /proc/kmsg as a photo', buildIndex({ catalogDir: dir, indexDir: path.join(folder(), 'index'), embedder }));
    expect(report.total).toBe(1);
    expect(report.failed.map((f) => f.id)).toEqual(['b.jpg']);
  }, 90_000);

  it('/proc as a catalog: a catalog error, not a bug', async () => {
    const out = await within(30_000, 'reading /proc as a catalog', readCatalog('/proc').then(() => undefined, (e: unknown) => e));
    expect(isLookalikeError(out), String(out)).toBe(true);
    expect((out as LookalikeError).code).not.toBe('INTERNAL');
  }, 40_000);
});

describe('styles.csv is the list of products (item 13)', () => {
  it('a row deleted from styles.csv removes the product though its photo stays; a photo without a row is reported, not indexed', async () => {
    const dir = folder('lookalike-h23-list-');
    cpSync(catalog, dir, { recursive: true });
    const index = path.join(folder(), 'index');
    expect((await buildIndex({ catalogDir: dir, indexDir: index, embedder })).total).toBe(16);

    const csv = path.join(dir, 'styles.csv');
    writeFileSync(csv, readFileSync(csv, 'utf8').split('\n').filter((l) => !l.startsWith('1003,')).join('\n'));
    writeFileSync(path.join(dir, 'images', '9999.jpg'), await drawProduct('watch', '#a3c'));
    const report = await buildIndex({ catalogDir: dir, indexDir: index, embedder });
    expect(report.removed).toBe(1);
    expect(report.added).toBe(0);
    expect(report.catalog.problems.filter((p) => p.kind === 'unlisted-image').map((p) => p.id).sort()).toEqual(['1003', '9999']);
    const store = await openStore(index);
    try {
      const ids = store.listItems().map((i) => i.id);
      expect(ids).toHaveLength(15);
      expect(ids).not.toContain('1003');
      expect(ids).not.toContain('9999');
    } finally {
      await store.close();
    }
  }, 120_000);

  it('the removal guard still holds: a styles.csv cut to a few rows is INDEX_WOULD_REMOVE', async () => {
    const dir = folder('lookalike-h23-list-');
    cpSync(catalog, dir, { recursive: true });
    const index = path.join(folder(), 'index');
    await buildIndex({ catalogDir: dir, indexDir: index, embedder });
    const csv = path.join(dir, 'styles.csv');
    writeFileSync(csv, readFileSync(csv, 'utf8').split('\n').slice(0, 4).join('\n'));
    await expect(buildIndex({ catalogDir: dir, indexDir: index, embedder })).rejects.toMatchObject({ code: 'INDEX_WOULD_REMOVE' });
  }, 120_000);
});
