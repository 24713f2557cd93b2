import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, rmSync, unlinkSync, readFileSync, cpSync, utimesSync } from 'node:fs';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { Embedder } from '../../src/model/embedder.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { isLookalikeError } from '../../src/errors.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';

let embedder: Embedder;
let catalog: string;
let indexDir: string;
const items = defaultItems();

beforeAll(async () => {
  embedder = await Embedder.create('resnet50-imagenet');
  catalog = await makeCatalog(items);
  indexDir = path.join(tempDir(), 'index');
  await buildIndex({ catalogDir: catalog, indexDir, embedder, batchSize: 5 });
});

afterAll(async () => {
  await embedder?.release();
});

describe('building an index', () => {
  it('embeds every catalog item and remembers the model and preprocessing', () => {
    const store = SqliteStore.open(indexDir);
    const manifest = store.getManifest()!;
    expect(store.count()).toEqual({ items: 16, embedded: 16, failed: 0 });
    // A float32 backbone passed in makes a float32 index (a new one is int8 by default, see quantise-parity).
    expect(manifest.settings).toMatchObject({ backbone: 'resnet50-imagenet', width: 224, height: 224, resize: 'stretch', pooling: 'max', precision: 'fp32' });
    expect(manifest.calibration).toBeUndefined();
    expect(manifest.weightsId).toMatch(/^resnet50-imagenet@/);
    expect(manifest.catalog.columns).toContain('articleType');
    store.close();
  });

  it('does nothing on a rerun, adds new ids and drops removed ones', async () => {
    const again = await buildIndex({ catalogDir: catalog, indexDir, embedder });
    expect(again).toMatchObject({ added: 0, removed: 0, total: 16 });

    const copy = tempDir();
    cpSync(catalog, copy, { recursive: true });
    writeFileSync(path.join(copy, 'images', '2000.jpg'), await drawProduct('shirt', '#d22'));
    writeFileSync(path.join(copy, 'styles.csv'), readFileSync(path.join(copy, 'styles.csv'), 'utf8').replace(/^1003,.*\n/m, '') + '2000,Men,Apparel,Topwear,Shirts,Red,Summer,2012,Casual,New red shirt\n');
    unlinkSync(path.join(copy, 'images', '1003.jpg'));
    const other = path.join(tempDir(), 'index');
    cpSync(indexDir, other, { recursive: true });
    const report = await buildIndex({ catalogDir: copy, indexDir: other, embedder });
    expect(report).toMatchObject({ added: 1, removed: 1, total: 16 });
    const store = SqliteStore.open(other);
    expect(store.getItem('2000')?.metadata.productDisplayName).toBe('New red shirt');
    expect(store.getItem('1003')).toBeUndefined();
    store.close();
  });

  it('embeds again a photo replaced under the same name, not one touched or copied with the same bytes', async () => {
    const copy = tempDir();
    cpSync(catalog, copy, { recursive: true });
    const dir = path.join(tempDir(), 'index');
    cpSync(indexDir, dir, { recursive: true });
    const vectorOf = (id: string) => { const s = SqliteStore.open(dir); const m = s.loadMatrix('max'); s.close(); const r = m.ids.indexOf(id); return m.data.slice(r * m.dim, (r + 1) * m.dim); };
    const [v1, v2] = [vectorOf('1001'), vectorOf('1002')];
    // 1001: new bytes under the same name; 1002: touched, same bytes (a later mtime).
    writeFileSync(path.join(copy, 'images', '1001.jpg'), await drawProduct('bag', '#2a3'));
    utimesSync(path.join(copy, 'images', '1002.jpg'), new Date(), new Date(Date.now() + 60_000));
    const report = await buildIndex({ catalogDir: copy, indexDir: dir, embedder });
    expect(report).toMatchObject({ added: 1, changed: 1, removed: 0, total: 16 });
    expect(vectorOf('1001')).not.toEqual(v1);
    expect(vectorOf('1002')).toEqual(v2);
    // The touched file's new stamp was recorded: the next run neither embeds nor re-hashes it.
    const store = SqliteStore.open(dir);
    const sources = await store.imageSources();
    expect(sources.get('1002')!.stamp).toMatch(/^file:\d+:\d+$/);
    expect(sources.get('1001')!.hash).toBe(createHash('sha256').update(readFileSync(path.join(copy, 'images', '1001.jpg'))).digest('hex'));
    store.close();
    expect(await buildIndex({ catalogDir: copy, indexDir: dir, embedder })).toMatchObject({ added: 0, changed: 0 });
  });

  it('upgrades an index written before image hashes were kept, and counts its images as unchanged', async () => {
    const dir = path.join(tempDir(), 'index');
    cpSync(indexDir, dir, { recursive: true });
    const db = new Database(path.join(dir, 'index.sqlite'));
    db.exec('ALTER TABLE vectors DROP COLUMN image_hash; ALTER TABLE vectors DROP COLUMN image_stamp;');
    db.close();
    expect(await buildIndex({ catalogDir: catalog, indexDir: dir, embedder })).toMatchObject({ added: 0, changed: 0, total: 16 });
    const store = SqliteStore.open(dir);
    expect((await store.imageSources()).size).toBe(0);
    store.close();
  });

  it('resumes after an interruption without embedding anything twice or losing anything', async () => {
    const dir = path.join(tempDir(), 'index');
    const controller = new AbortController();
    const first = await buildIndex({
      catalogDir: catalog, indexDir: dir, embedder, batchSize: 4,
      onProgress: (p) => { if (p.done >= 4) controller.abort(); },
      signal: controller.signal,
    });
    expect(first.interrupted).toBe(true);
    expect(first.added).toBe(4);
    expect(first.pending).toBe(12);
    const second = await buildIndex({ catalogDir: catalog, indexDir: dir, embedder, batchSize: 4 });
    expect(second).toMatchObject({ added: 12, total: 16, interrupted: false, pending: 0 });
    const a = SqliteStore.open(dir).loadMatrix('max');
    const b = SqliteStore.open(indexDir).loadMatrix('max');
    expect(a.ids).toEqual(b.ids);
    // Same images, same vectors, whether embedded in one run or two.
    for (let i = 0; i < a.data.length; i += 997) expect(a.data[i]).toBeCloseTo(b.data[i], 3);
  });

  it('reports unreadable images and indexes the rest', async () => {
    const dir = await makeCatalog(items.slice(0, 4));
    const jpeg = await drawProduct('bag', '#23c');
    writeFileSync(path.join(dir, 'images', '1001.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2))); // truncated
    writeFileSync(path.join(dir, 'images', '1002.jpg'), 'this is not an image');
    const report = await buildIndex({ catalogDir: dir, indexDir: path.join(tempDir(), 'index'), embedder });
    expect(report.total).toBe(2);
    expect(report.failed.map((f) => f.id).sort()).toEqual(['1001', '1002']);
    expect(report.failed.find((f) => f.id === '1002')!.reason).toMatch(/not an image/);
  });

  it('refuses to mix input sizes in one index', async () => {
    await expect(buildIndex({ catalogDir: catalog, indexDir, embedder, settings: { width: 128, height: 128 } }))
      .rejects.toSatisfy((err: unknown) => isLookalikeError(err, 'MODEL_MISMATCH'));
  });

  it('indexes a plain folder of images with relative paths as ids', async () => {
    const dir = tempDir();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(path.join(dir, 'tops'));
    writeFileSync(path.join(dir, 'tops', 'red.png'), await drawProduct('shirt', '#d22', 'png'));
    writeFileSync(path.join(dir, 'blue.webp'), await drawProduct('shirt', '#23c', 'webp'));
    const report = await buildIndex({ catalogDir: dir, indexDir: path.join(dir, '.idx'), embedder });
    expect(report.total).toBe(2);
    const store = SqliteStore.open(path.join(dir, '.idx'));
    expect(store.listItems().map((i) => i.id).sort()).toEqual(['blue.webp', 'tops/red.png']);
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('searching an index', () => {
  let lookalike: Lookalike;
  beforeAll(async () => { lookalike = await Lookalike.open(indexDir); });
  afterAll(async () => { await lookalike.close(); });

  it('finds the same kind of product for a new photo', async () => {
    const photo = await drawProduct('watch', '#d22');
    const { results } = await lookalike.searchByImage(photo, { k: 3 });
    expect(results).toHaveLength(3);
    expect(results.map((r) => r.rank)).toEqual([1, 2, 3]);
    expect(results[0].metadata.articleType).toBe('Watches');
    expect(results[0].score).toBeGreaterThan(0.95);
  });

  it('more like this excludes the item itself and ranks by descending score', async () => {
    const { results } = await lookalike.searchById('1000', { k: 15 });
    expect(results).toHaveLength(15);
    expect(results.map((r) => r.id)).not.toContain('1000');
    for (let i = 1; i < results.length; i++) expect(results[i - 1].score).toBeGreaterThanOrEqual(results[i].score);
  });

  it('applies metadata filters and the similarity threshold', async () => {
    const { results } = await lookalike.searchById('1000', { k: 10, filters: { baseColour: ['Blue'], masterCategory: ['Accessories'] } });
    expect(results.length).toBe(2);
    expect(results.every((r) => r.metadata.baseColour === 'Blue' && r.metadata.masterCategory === 'Accessories')).toBe(true);
    const strict = await lookalike.searchById('1000', { k: 10, threshold: 0.999 });
    expect(strict.results).toEqual([]);
  });

  it('refuses a query made with other preprocessing than the index', async () => {
    await expect(lookalike.searchById('1000', { expect: { width: 128, height: 128 } })).rejects.toThrowError(/was built with resnet50-imagenet\/224x224\/stretch/);
  });

  it('says which id is unknown', async () => {
    await expect(lookalike.searchById('nope')).rejects.toThrowError(/no item with id "nope"/);
  });

  it('recommends top-k for every item in one batch', async () => {
    const rec = await lookalike.recommendAll(3);
    expect(rec.ids).toHaveLength(16);
    for (let q = 0; q < 16; q++) {
      const single = (await lookalike.searchById(rec.ids[q], { k: 3 })).results.map((r) => r.id);
      expect(Array.from(rec.rows.subarray(q * 3, q * 3 + 3)).map((r) => rec.ids[r])).toEqual(single);
    }
  });
});
