import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultItems, drawProduct, makeCatalog, STYLE_COLUMNS } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';
import { dropIndex, freshIndexName, PG_URL, sql } from '../helpers/pg.js';
import { OutageProxy } from '../helpers/outage.js';

// One database, one indexer, two `serve` replicas, all real processes: what a shop runs.
// Changes made by the indexer must reach both replicas within 2 s, without a restart.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NAME = freshIndexName('replicas');
const STORE = ['--store', PG_URL, '--index', NAME];
const PROPAGATION_MS = 2000;
// The replicas reach the database through a hop the test can take down (a restart, as they see it).
const database = new URL(PG_URL);
const proxy = new OutageProxy({ host: database.hostname, port: Number(database.port || 5432) });
const REPLICA_STORE = () => ['--store', proxy.url(PG_URL), '--index', NAME];

interface Replica { proc: ChildProcess; url: string; log: string[] }
const replicas: Replica[] = [];
let catalog: string;

function startReplica(): Promise<Replica> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'serve', ...REPLICA_STORE(), '--port', '0'], { cwd: ROOT, env: process.env });
    const log: string[] = [];
    const timer = setTimeout(() => reject(new Error(`replica did not start: ${log.join('')}`)), 120_000);
    const onData = (chunk: Buffer) => {
      log.push(chunk.toString());
      const m = /Listening on (http:\/\/\S+?)\/? /.exec(log.join(''));
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1].replace(/\/$/, ''), log });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (c: Buffer) => log.push(c.toString()));
    proc.on('exit', (code) => reject(new Error(`replica exited (${code}): ${log.join('')}`)));
  });
}

async function health(r: Replica): Promise<{ ready: boolean; modes: string[]; index: { items: number; generation: number } }> {
  return (await fetch(`${r.url}/api/health`)).json() as never;
}

async function topByPhoto(r: Replica, photo: Buffer): Promise<string | undefined> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(photo)], { type: 'image/jpeg' }), 'q.jpg');
  form.append('k', '3');
  const res = await fetch(`${r.url}/api/search`, { method: 'POST', body: form });
  if (res.status !== 200) return undefined;
  return ((await res.json()) as { results: Array<{ id: string }> }).results[0]?.id;
}

/** Polls `check` on every replica until all pass; returns the ms it took, or throws after `limit`. */
async function untilAll(check: (r: Replica) => Promise<boolean>, limit: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const ok = await Promise.all(replicas.map((r) => check(r).catch(() => false)));
    if (ok.every(Boolean)) return Date.now() - started;
    if (Date.now() - started > limit) throw new Error(`not on every replica after ${limit} ms: ${ok}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

function index(): void {
  const r = runCli(['index', catalog, ...STORE]);
  expect(r.stderr).not.toMatch(/\[[A-Z_]+\]/);
  expect(r.code).toBe(0);
}

async function addProduct(id: string, shape: 'shirt' | 'bag', colour: string): Promise<Buffer> {
  const photo = await drawProduct(shape, colour);
  writeFileSync(path.join(catalog, 'images', `${id}.jpg`), photo);
  const row = [id, 'Women', 'Apparel', 'Topwear', 'Shirts', 'Purple', 'Summer', '2012', 'Casual', `New ${id}`];
  expect(row.length).toBe(STYLE_COLUMNS.length + 1);
  writeFileSync(path.join(catalog, 'styles.csv'), `${readFileSync(path.join(catalog, 'styles.csv'), 'utf8')}${row.join(',')}\n`);
  return photo;
}

function removeProduct(id: string): void {
  const file = path.join(catalog, 'styles.csv');
  writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((l) => !l.startsWith(`${id},`)).join('\n'));
  rmSync(path.join(catalog, 'images', `${id}.jpg`), { force: true });
}

beforeAll(async () => {
  catalog = await makeCatalog(defaultItems());
  await proxy.start();
  index();
  replicas.push(...await Promise.all([startReplica(), startReplica()]));
  await untilAll(async (r) => (await health(r)).ready, 120_000);
}, 300_000);

afterAll(async () => {
  for (const r of replicas) r.proc.kill('SIGKILL');
  await proxy.stop();
  rmSync(catalog, { recursive: true, force: true });
  await dropIndex(PG_URL, NAME);
});

describe('one indexer and two replicas on one PostgreSQL database', () => {
  it('serve the same generation of the same catalog', async () => {
    const [a, b] = await Promise.all(replicas.map(health));
    expect(a.index.items).toBe(16);
    expect(b.index).toMatchObject({ items: 16, generation: a.index.generation });
  });

  it('find a product added to the catalog and indexed, on both replicas within 2 s', async () => {
    const photo = await addProduct('2001', 'bag', '#a3c');
    expect(await topByPhoto(replicas[0], photo)).not.toBe('2001');
    index();
    const ms = await untilAll(async (r) => (await topByPhoto(r, photo)) === '2001', PROPAGATION_MS);
    expect(ms).toBeLessThan(PROPAGATION_MS);
    const [a, b] = await Promise.all(replicas.map(health));
    expect(a.index).toMatchObject({ items: 17, generation: b.index.generation });
  });

  it('drop a removed product from both replicas within 2 s', async () => {
    removeProduct('2001');
    index();
    const ms = await untilAll(async (r) => (await fetch(`${r.url}/api/items/2001`)).status === 404, PROPAGATION_MS);
    expect(ms).toBeLessThan(PROPAGATION_MS);
    expect((await Promise.all(replicas.map(health))).map((h) => h.index.items)).toEqual([16, 16]);
  });

  it('pick up a head trained into the database, without a restart', async () => {
    expect((await health(replicas[0])).modes).toEqual([]);
    const r = runCli(['train', ...STORE, '--epochs', '3', '--dim', '16']);
    expect(r.code).toBe(0);
    await untilAll(async (x) => (await health(x)).modes.length > 0, PROPAGATION_MS);
    const res = await fetch(`${replicas[1].url}/api/items/1000/similar?k=3`);
    expect(res.status).toBe(200);
  });

  it('keep answering while the database is down (a restart, as they see it), reconnect, and catch up', async () => {
    // Down for 3 s, as a restart is: every connection cut, new ones refused; then back.
    const outage = (async () => {
      await proxy.stop();
      await new Promise((x) => setTimeout(x, 3000));
      await proxy.start();
    })();
    const answered: number[] = [];
    const during = (async () => {
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        const res = await fetch(`${replicas[0].url}/api/items/1000/similar?k=3`);
        answered.push(res.status);
        await new Promise((x) => setTimeout(x, 100));
      }
    })();
    await outage;
    await during;
    expect(answered.length).toBeGreaterThan(5);
    expect(answered.every((s) => s === 200)).toBe(true);
    // Back up: an item added now reaches both (the listener reconnects; the poll covers the gap).
    await sql(PG_URL, 'SELECT 1');
    const photo = await addProduct('2002', 'shirt', '#a3c');
    index();
    await untilAll(async (r) => (await topByPhoto(r, photo)) === '2002', 10_000).catch((err) => { throw new Error(`${err.message}\n${replicas.map((r) => r.log.join('').slice(-1500)).join('\n---\n')}`); });
  });
});

describe('indexing into PostgreSQL', () => {
  it('kill -9 mid-run, then rerun: exactly the catalog\'s items, none twice', async () => {
    const name = freshIndexName('kill');
    const items = Array.from({ length: 96 }, (_, i) => ({ ...defaultItems()[i % 16], id: String(5000 + i), colour: `#${(0x100 + i * 7).toString(16).slice(-3)}` }));
    const big = await makeCatalog(items);
    try {
      const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'index', big, '--store', PG_URL, '--index', name, '--batch', '8'], { cwd: ROOT, stdio: 'ignore' });
      // Kill once a few batches are in (committed), mid-run.
      const deadline = Date.now() + 120_000;
      for (;;) {
        const n = await sql(PG_URL, `SELECT count(*)::int AS n FROM "${name}".vectors`).then((r) => r.rows[0].n as number, () => 0);
        if (n >= 16) break;
        if (Date.now() > deadline) throw new Error('index made no progress');
        await new Promise((x) => setTimeout(x, 100));
      }
      proc.kill('SIGKILL');
      await new Promise((x) => proc.on('exit', x));
      const partial = (await sql(PG_URL, `SELECT count(*)::int AS n FROM "${name}".vectors`)).rows[0].n as number;
      expect(partial).toBeLessThan(96);
      const r = runCli(['index', big, '--store', PG_URL, '--index', name]);
      expect(r.code).toBe(0);
      const counts = (await sql(PG_URL, `SELECT (SELECT count(*)::int FROM "${name}".items) AS items, (SELECT count(DISTINCT id)::int FROM "${name}".items) AS distinct_items,
        (SELECT count(*)::int FROM "${name}".vectors) AS vectors, (SELECT count(*)::int FROM "${name}".failures) AS failures`)).rows[0];
      expect(counts).toEqual({ items: 96, distinct_items: 96, vectors: 96, failures: 0 });
      const ids = (await sql(PG_URL, `SELECT id FROM "${name}".items ORDER BY id`)).rows.map((x: { id: string }) => x.id);
      expect(ids).toEqual(items.map((i) => i.id).sort());
    } finally {
      rmSync(big, { recursive: true, force: true });
      await dropIndex(PG_URL, name);
    }
  });
});
