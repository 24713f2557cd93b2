import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { readCatalog } from '../../src/catalog/index.js';
import { PHOTO_KEYS } from '../../src/catalog/photos.js';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { createServer } from '../../src/server/app.js';
import { copyIndex } from '../../src/store/copy.js';
import { storeLocation } from '../../src/store/location.js';
import { evaluateIndex } from '../../src/lab/eval/evaluate-index.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCliInProcess } from '../helpers/cli.js';
import { dropIndex, freshIndexName, PG_URL } from '../helpers/pg.js';

// Several photos per product (catalog/photos.ts, search/products.ts): every photo a row of
// its own, searches folding them back into products by their best photo.

const cleanup: string[] = [];
afterAll(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

async function catalogOf(ids: string[]): Promise<string> {
  const dir = await makeCatalog(defaultItems().filter((i) => ids.includes(i.id)));
  cleanup.push(dir);
  return dir;
}

const rowIds = (c: { items: Array<{ id: string }> }) => c.items.map((i) => i.id);

describe('reading a catalog with several photos per product', () => {
  it('takes images/<id>_<n>.jpg as further photos, by n, unless <id>_<n> is a product of its own', async () => {
    const dir = await catalogOf(['1000', '1001']);
    const img = (name: string) => path.join(dir, 'images', name);
    for (const n of ['10', '2']) copyFileSync(img('1000.jpg'), img(`1000_${n}.jpg`));
    // 1001_2 is listed in styles.csv: its file is that product's image, not a photo of 1001.
    copyFileSync(img('1001.jpg'), img('1001_2.jpg'));
    writeFileSync(path.join(dir, 'styles.csv'), `${readFileSync(path.join(dir, 'styles.csv'), 'utf8')}1001_2,Men,,,,,,,,Another product\n`);
    const catalog = await readCatalog(dir);
    expect(rowIds(catalog)).toEqual(['1000', '1000#images/1000_2.jpg', '1000#images/1000_10.jpg', '1001', '1001_2']);
    expect(catalog.items[2]).toMatchObject({ imagePath: img('1000_10.jpg'), metadata: { [PHOTO_KEYS.product]: '1000', [PHOTO_KEYS.index]: '2', articleType: 'Shirts' } });
    expect(catalog.items[0].metadata[PHOTO_KEYS.product]).toBeUndefined();
    expect(catalog).toMatchObject({ products: 3, photos: 5 });
    expect(catalog.problems).toEqual([]);
  });

  it('takes a folder images/<id>/ as the photos of <id>, its first photo the product\'s when it has no images/<id>.jpg', async () => {
    const dir = await catalogOf(['1000', '1001']);
    mkdirSync(path.join(dir, 'images', '1001'));
    copyFileSync(path.join(dir, 'images', '1001.jpg'), path.join(dir, 'images', '1001', 'b-side.jpg'));
    copyFileSync(path.join(dir, 'images', '1000.jpg'), path.join(dir, 'images', '1001', 'a-front.png'));
    unlinkSync(path.join(dir, 'images', '1001.jpg'));
    const catalog = await readCatalog(dir);
    expect(rowIds(catalog)).toEqual(['1000', '1001', '1001#images/1001/b-side.jpg']);
    expect(catalog.items[1].imagePath).toBe(path.join(dir, 'images', '1001', 'a-front.png'));
    expect(catalog.problems).toEqual([]);
  });

  it('reads images.csv (id, file or URL, view): files inside the catalog folder, http(s) URLs, views; refuses files outside', async () => {
    const dir = await catalogOf(['1000', '1001']);
    mkdirSync(path.join(dir, 'extra'));
    copyFileSync(path.join(dir, 'images', '1000.jpg'), path.join(dir, 'extra', 'back.jpg'));
    writeFileSync(path.join(dir, 'images.csv'), [
      'id,file,view',
      '1000,images/1000.jpg,front',
      '1000,extra/back.jpg,back',
      '1000,https://shop.example/1000-detail.jpg,detail',
      '1001,../../etc/passwd.jpg,side',
      '',
    ].join('\n'));
    const catalog = await readCatalog(dir);
    expect(rowIds(catalog)).toEqual(['1000', '1000#extra/back.jpg', '1000#https://shop.example/1000-detail.jpg', '1001']);
    expect(catalog.items[0].metadata[PHOTO_KEYS.view]).toBe('front');
    expect(catalog.items[1].metadata).toMatchObject({ [PHOTO_KEYS.view]: 'back', [PHOTO_KEYS.index]: '1' });
    expect(catalog.items[2].imagePath).toBe('https://shop.example/1000-detail.jpg');
    expect(catalog.problems.map((p) => p.detail)).toEqual([expect.stringContaining('outside the catalog folder')]);
  });

  it('leaves a catalog without further photos exactly as it was', async () => {
    const dir = await catalogOf(['1000', '1001']);
    const catalog = await readCatalog(dir);
    expect(catalog.products).toBeUndefined();
    expect(catalog.items.map((i) => Object.keys(i))).toEqual([['id', 'imagePath', 'metadata'], ['id', 'imagePath', 'metadata']]);
  });
});

describe('indexing and searching photos, results per product', () => {
  // Shirts and trousers of four colours; the red shirt 1000 also has a photo of a green bag
  // (its "back"), and 1005 a second photo that is its packshot again (a re-upload).
  const ids = ['1000', '1001', '1002', '1003', '1004', '1005', '1006', '1007'];
  let dir: string;
  let work: string;
  let indexDir: string;
  let lookalike: Lookalike;
  let app: FastifyInstance;
  let bag: Buffer;

  beforeAll(async () => {
    dir = await catalogOf(ids);
    work = tempDir('lookalike-photos-');
    cleanup.push(work);
    bag = await drawProduct('bag', '#2a3');
    writeFileSync(path.join(dir, 'images', '1000_2.jpg'), bag);
    copyFileSync(path.join(dir, 'images', '1005.jpg'), path.join(dir, 'images', '1005_2.jpg'));
    indexDir = path.join(work, 'index');
    await buildIndex({ catalogDir: dir, indexDir });
    lookalike = await Lookalike.open(indexDir);
    app = await createServer(lookalike, { warmUp: false, webRoot: false });
  });

  afterAll(async () => {
    await app?.close();
    await lookalike?.close();
  });

  it('embeds every photo, and counts products and photos (info)', async () => {
    expect(lookalike.indexView().size).toBe(10);
    expect(lookalike.photos.products).toBe(8);
    const info = JSON.parse((await runCliInProcess(['info', '--index', indexDir, '--json'])).stdout);
    expect(info.counts).toMatchObject({ items: 10, embedded: 10, products: 8, photos: 10 });
  });

  it('exports metadata once per product and embeddings once per photo, naming its product and place', async () => {
    const metadata = path.join(work, 'meta.csv'), embeddings = path.join(work, 'emb.csv');
    const run = await runCliInProcess(['export', '--index', indexDir, '--metadata', metadata, '--embeddings', embeddings]);
    expect(run.exit).toBe(0);
    expect(run.stderr).toMatch(/exported 8 products, 10 photos/);
    const meta = readFileSync(metadata, 'utf8').trim().split('\n');
    expect(meta).toHaveLength(1 + 8);
    expect(meta.slice(1).map((l) => l.split(',')[0]).sort()).toEqual([...ids].sort());
    const emb = readFileSync(embeddings, 'utf8').trim().split('\n').map((l) => l.split(','));
    expect(emb[0].slice(0, 4)).toEqual(['id', 'product', 'photo', 'e0']);
    expect(emb).toHaveLength(1 + 10);
    expect(emb.find((r) => r[0] === '1000#images/1000_2.jpg')!.slice(1, 3)).toEqual(['1000', '1']);
    expect(emb.find((r) => r[0] === '1001')!.slice(1, 3)).toEqual(['1001', '0']);
  });

  it('finds a product by any of its photos, once, saying which photo matched', async () => {
    const { results } = await lookalike.searchByImage(bag, { k: 8 });
    expect(results[0]).toMatchObject({ id: '1000', photo: { index: 1, of: 2, image: path.join(dir, 'images', '1000_2.jpg') } });
    expect(results[0].metadata[PHOTO_KEYS.product]).toBeUndefined();
    expect(results[0].image).toBe(path.join(dir, 'images', '1000.jpg'));
    // Results are products: 8 of them, each once, although 10 photos were searched.
    expect(new Set(results.map((r) => r.id)).size).toBe(8);
    expect(results.map((r) => r.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // A product with one photo says nothing of photos (as before).
    expect(results.find((r) => r.id === '1001')!.photo).toBeUndefined();
  });

  it('never returns the product itself for "more like this", nor counts its photos as products elsewhere', async () => {
    const { results } = await lookalike.searchById('1005', { k: 7 });
    expect(results.map((r) => r.id)).not.toContain('1005');
    expect(results).toHaveLength(7);
    expect(lookalike.list(undefined, 0, 100).total).toBe(8);
    expect(lookalike.facets(['articleType']).articleType.reduce((s, f) => s + f.count, 0)).toBe(8);
    // 1005's second photo is its packshot again: not a duplicate of another product.
    expect((await lookalike.duplicates({ threshold: 0.97 })).groups).toEqual([]);
    const evaluation = await evaluateIndex(lookalike, { k: 3 });
    expect(evaluation.items).toBe(8);
  });

  it('folds the ANN index\'s photo rows into products alike', async () => {
    const ann = await Lookalike.open(indexDir, { search: 'ann', readonly: true });
    try {
      const { results } = await ann.searchByImage(bag, { k: 8 });
      expect(results[0]).toMatchObject({ id: '1000', photo: { index: 1, of: 2 } });
      expect(new Set(results.map((r) => r.id)).size).toBe(8);
    } finally {
      await ann.close();
    }
  });

  it('answers the API with the matched photo, served at /images/:id?photo=n', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(bag)], { type: 'image/jpeg' }), 'bag.jpg');
    form.append('k', '3');
    const body = new Response(form);
    const res = await app.inject({ method: 'POST', url: '/api/search', payload: Buffer.from(await body.arrayBuffer()), headers: { 'content-type': body.headers.get('content-type')! } });
    expect(res.statusCode).toBe(200);
    const top = res.json().results[0];
    expect(top.photo).toEqual({ index: 1, of: 2, imageUrl: '/images/1000?photo=1', photos: ['/images/1000', '/images/1000?photo=1'] });
    const photo = await app.inject({ method: 'GET', url: top.photo.imageUrl });
    expect(photo.statusCode).toBe(200);
    expect(photo.rawPayload.equals(bag)).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/images/1000?photo=5' })).json().error.code).toBe('ITEM_NOT_FOUND');
  });

  it('indexes a removed and an added photo incrementally, and the same in PostgreSQL', async () => {
    const pgName = freshIndexName('f25photos');
    const pg = storeLocation(PG_URL, pgName);
    try {
      unlinkSync(path.join(dir, 'images', '1000_2.jpg'));
      const removed = await buildIndex({ catalogDir: dir, indexDir });
      expect(removed).toMatchObject({ added: 0, removed: 1 });
      writeFileSync(path.join(dir, 'images', '1000_3.jpg'), bag);
      const added = await buildIndex({ catalogDir: dir, indexDir });
      expect(added).toMatchObject({ added: 1, removed: 0 });
      const after = await Lookalike.open(indexDir, { readonly: true });
      try {
        expect(after.indexView().size).toBe(10);
        expect((await after.searchByImage(bag, { k: 1 })).results[0]).toMatchObject({ id: '1000', photo: { index: 1, image: path.join(dir, 'images', '1000_3.jpg') } });
      } finally {
        await after.close();
      }
      await copyIndex(indexDir, pg);
      const shared = await Lookalike.open(pg, { readonly: true });
      try {
        expect(shared.photos.products).toBe(8);
        const { results } = await shared.searchByImage(bag, { k: 8 });
        expect(results[0]).toMatchObject({ id: '1000', photo: { index: 1 } });
        expect(new Set(results.map((r) => r.id)).size).toBe(8);
      } finally {
        await shared.close();
      }
    } finally {
      await dropIndex(PG_URL, pgName).catch(() => {});
    }
  });
});
