import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { createServer } from '../../src/server/app.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { copyIndex } from '../../src/store/copy.js';
import { storeLocation } from '../../src/store/location.js';
import { isLookalikeError } from '../../src/errors.js';
import { foregroundRegions } from '../../src/photo/scene.js';
import { textTerms } from '../../src/search/text.js';
import { measurePhotoPlusWords, measureRecommend, measureShopTheLook, measureText } from '../../src/lab/eval/asking.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { dropIndex, freshIndexName, PG_URL, startPglite } from '../helpers/pg.js';
import { runCli } from '../helpers/cli.js';

// Asking the way shoppers ask (docs/asking.md): words on a search (SQLite FTS5 and
// PostgreSQL full-text), recommendations from liked and disliked examples, and every
// product of an outfit photo. The fixture: 4 shapes x 4 colours, named "Test Red Shirts, size M".
const items = defaultItems();
const idOf = (shape: string, colour: string) => items.find((i) => i.shape === shape && i.metadata!.baseColour === colour)!.id;
let catalog: string;
let indexDir: string;
let lookalike: Lookalike;
let pg: Lookalike;
const pgName = freshIndexName('asking');
let files: string;

/** Two products side by side on white: a red shirt left, a blue watch right. */
async function outfit(): Promise<Buffer> {
  const layers = await Promise.all([['shirt', '#d22', 40], ['watch', '#23c', 320]].map(async ([shape, colour, left]) => ({
    input: await sharp(await drawProduct(shape as 'shirt' | 'watch', colour as string, 'png', 'none')).resize(120, 160).png().toBuffer(), left: left as number, top: 100,
  })));
  return sharp({ create: { width: 480, height: 360, channels: 3, background: '#ffffff' } }).composite(layers).jpeg().toBuffer();
}

beforeAll(async () => {
  catalog = await makeCatalog(items);
  indexDir = tempDir('lookalike-asking-');
  await buildIndex({ catalogDir: catalog, indexDir });
  lookalike = await Lookalike.open(indexDir);
  await copyIndex(indexDir, storeLocation(PG_URL, pgName));
  pg = await Lookalike.open(storeLocation(PG_URL, pgName));
  files = tempDir('lookalike-asking-files-');
  writeFileSync(path.join(files, 'outfit.jpg'), await outfit());
});

afterAll(async () => {
  await lookalike?.close();
  await pg?.close();
  await dropIndex(PG_URL, pgName);
  for (const dir of [catalog, indexDir, files]) if (dir) rmSync(dir, { recursive: true, force: true });
});

const colours = (r: { results: Array<{ metadata: Record<string, string> }> }) => r.results.map((h) => h.metadata.baseColour);

describe.each([
  ['SQLite FTS5', () => lookalike],
  ['PostgreSQL full-text', () => pg],
])('words on a search (%s)', (_name, open) => {
  it('finds products by their name and attributes, stemmed: plurals and singulars match', async () => {
    const l = open();
    const red = await l.searchText('red shirt', { k: 16 });
    expect(red.query).toMatchObject({ kind: 'text', text: 'red shirt' });
    expect(red.results.map((r) => r.id)).toEqual([idOf('shirt', 'Red')]);
    // "watch" finds "Watches", "handbag" finds "Handbags".
    expect((await l.searchText('watch', { k: 16 })).results).toHaveLength(4);
    expect((await l.searchText('black handbag', { k: 16 })).results.map((r) => r.id)).toEqual([idOf('bag', 'Black')]);
    // Attributes count: every item is Casual; the filter narrows.
    expect((await l.searchText('casual', { k: 16, filters: { gender: ['Women'] } })).results.every((r) => r.metadata.gender === 'Women')).toBe(true);
  });

  it('corrects a word that matches nothing to the nearest catalog word, and says so', async () => {
    const r = await open().searchText('wacthes', { k: 16 });
    expect(r.query.corrected).toBe('watches');
    expect(r.results.map((h) => h.metadata.articleType)).toEqual(['Watches', 'Watches', 'Watches', 'Watches']);
    // Nothing near enough: no match, no guess.
    expect((await open().searchText('zzzzzzzz')).results).toEqual([]);
  });

  it('filters a visual search to the products matching the words, or boosts them', async () => {
    const l = open();
    const blueShirt = idOf('shirt', 'Blue');
    const plain = await l.searchById(blueShirt, { k: 15, search: 'exact' });
    const filtered = await l.searchById(blueShirt, { k: 15, search: 'exact', text: 'red' });
    expect(colours(filtered)).toEqual(['Red', 'Red', 'Red', 'Red']);
    expect(filtered.query).toMatchObject({ text: 'red', textMode: 'filter' });
    // Boost: every product still there, the red ones first; scores stay cosines.
    const boosted = await l.searchById(blueShirt, { k: 15, search: 'exact', text: 'red', textMode: 'boost' });
    expect(boosted.results.map((r) => r.id).sort()).toEqual(plain.results.map((r) => r.id).sort());
    const redRanks = boosted.results.filter((r) => r.metadata.baseColour === 'Red').map((r) => r.rank);
    const plainRedRanks = plain.results.filter((r) => r.metadata.baseColour === 'Red').map((r) => r.rank);
    expect(redRanks.reduce((a, b) => a + b)).toBeLessThan(plainRedRanks.reduce((a, b) => a + b));
    for (const r of boosted.results) expect(r.score).toBeCloseTo(plain.results.find((p) => p.id === r.id)!.score, 5);
  });

  it('refuses text without words', async () => {
    await expect(open().searchText('!!! ...')).rejects.toSatisfy((e) => isLookalikeError(e) && e.code === 'TEXT_NO_WORDS');
  });
});

describe('words with --search db (PGlite + pgvector)', () => {
  it('filters in the same SQL as the vector search, and boosts what pgvector returns', async () => {
    const server = await startPglite();
    const name = freshIndexName('askingdb');
    try {
      await copyIndex(indexDir, storeLocation(server.url, name));
      const db = await Lookalike.open(storeLocation(server.url, name));
      try {
        expect(db.databaseSearch).toBe(true);
        const blueShirt = idOf('shirt', 'Blue');
        const filtered = await db.searchById(blueShirt, { k: 10, search: 'db', text: 'red' });
        expect(colours(filtered)).toEqual(['Red', 'Red', 'Red', 'Red']);
        const exact = await db.searchById(blueShirt, { k: 10, search: 'exact', text: 'red' });
        expect(filtered.results.map((r) => r.id)).toEqual(exact.results.map((r) => r.id));
        const boosted = await db.searchById(blueShirt, { k: 15, search: 'db', text: 'red', textMode: 'boost' });
        expect(boosted.results.map((r) => r.id)).not.toContain(blueShirt);
        expect(boosted.results).toHaveLength(15);
      } finally {
        await db.close();
      }
    } finally {
      await server.stop();
    }
  });
});

describe('the SQLite full-text index', () => {
  it('follows every write of items (triggers), and is built for an index written before it', async () => {
    const dir = tempDir('lookalike-fts-');
    try {
      const store = SqliteStore.open(dir, { create: true });
      store.upsertItems([{ id: 'a', image: '/a.jpg', metadata: { productDisplayName: 'Navy Polo', articleType: 'Tshirts' } }, { id: 'b', image: '/b.jpg', metadata: { productDisplayName: 'Leather Belt', articleType: 'Belts' } }]);
      expect(store.searchText(['polos']).map((m) => m.id)).toEqual(['a']);
      store.upsertItems([{ id: 'a', image: '/a.jpg', metadata: { productDisplayName: 'Red Scarf', articleType: 'Scarves' } }]);
      expect(store.searchText(['polo'])).toEqual([]);
      expect(store.searchText(['scarf']).map((m) => m.id)).toEqual(['a']);
      store.deleteItems(['b']);
      expect(store.searchText(['belt'])).toEqual([]);
      // A T-shirt is not a shirt; "t-shirts" and "tshirt" find it.
      store.upsertItems([{ id: 'c', image: '/c.jpg', metadata: { productDisplayName: 'Navy T-Shirt', articleType: 'Tshirts' } }]);
      expect(store.searchText(textTerms('navy shirt'))).toEqual([]);
      expect(store.searchText(textTerms('navy t-shirts')).map((m) => m.id)).toEqual(['c']);
      expect(store.searchText(textTerms('navy tshirt')).map((m) => m.id)).toEqual(['c']);
      store.close();
      // An index from before: no text table, no triggers. Opened read-only it gets a copy
      // in memory; opened for writing, the table is made and filled.
      const db = new Database(path.join(dir, 'index.sqlite'));
      db.exec('DROP TRIGGER items_text_insert; DROP TRIGGER items_text_update; DROP TRIGGER items_text_delete; DROP TABLE items_text;');
      db.close();
      const readonly = SqliteStore.open(dir, { readonly: true });
      expect(readonly.searchText(['scarves']).map((m) => m.id)).toEqual(['a']);
      readonly.close();
      const again = SqliteStore.open(dir);
      expect(again.searchText(['scarves']).map((m) => m.id)).toEqual(['a']);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('recommend from examples', () => {
  it('never returns the examples, and a disliked example changes the list', async () => {
    const like = [{ id: idOf('shirt', 'Red') }, { id: idOf('trousers', 'Red') }];
    const liked = await lookalike.recommend({ like, k: 14 });
    expect(liked.query).toMatchObject({ kind: 'examples', like: like.map((e) => e.id), strategy: 'average' });
    expect(liked.results.map((r) => r.id)).not.toContain(like[0].id);
    const unlike = [{ id: idOf('shirt', 'Blue') }];
    const refined = await lookalike.recommend({ like, unlike, k: 13 });
    const ids = refined.results.map((r) => r.id);
    for (const e of [...like, ...unlike]) expect(ids).not.toContain(e.id);
    expect(ids).not.toEqual(liked.results.map((r) => r.id).filter((id) => id !== unlike[0].id));
    // Every strategy answers, with the examples left out.
    for (const strategy of ['best_score', 'sum_scores'] as const) {
      const r = await lookalike.recommend({ like, unlike, k: 5, strategy });
      expect(r.results).toHaveLength(5);
      expect(r.results.some((h) => [...like, ...unlike].some((e) => e.id === h.id))).toBe(false);
    }
  });

  it('takes photos as examples beside catalog items, and the words and filters of a search', async () => {
    const photo = await drawProduct('shirt', '#e90');
    const r = await lookalike.recommend({ like: [{ image: photo }], unlike: [{ id: idOf('shirt', 'Red') }], k: 3, filters: { articleType: ['Shirts'] } });
    expect(r.query).toMatchObject({ photos: 1, unlike: [idOf('shirt', 'Red')] });
    expect(r.results.map((h) => h.metadata.articleType)).toEqual(['Shirts', 'Shirts', 'Shirts']);
    const green = await lookalike.recommend({ like: [{ id: idOf('bag', 'Red') }], text: 'green', k: 5 });
    expect(colours(green)).toEqual(['Green', 'Green', 'Green', 'Green']);
  });

  it('says what is missing: a liked example, a known item', async () => {
    await expect(lookalike.recommend({ like: [], unlike: [{ id: idOf('bag', 'Red') }] })).rejects.toSatisfy((e) => isLookalikeError(e) && e.code === 'NO_LIKED_EXAMPLE');
    await expect(lookalike.recommend({ like: [{ id: 'nope' }] })).rejects.toSatisfy((e) => isLookalikeError(e) && e.code === 'ITEM_NOT_FOUND');
    await expect(lookalike.recommend({ like: [{ nope: 1 } as never] })).rejects.toSatisfy((e) => isLookalikeError(e) && e.code === 'BAD_OPTION');
  });
});

describe('shop the look', () => {
  it('finds the products standing apart on a plain background', async () => {
    const { data, info } = await sharp(await outfit()).resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const boxes = foregroundRegions(new Uint8Array(data), info.width, info.height);
    expect(boxes).toHaveLength(2);
    const [left, right] = [...boxes].sort((a, b) => a.x - b.x);
    expect(left.x + left.w).toBeLessThan(0.5);
    expect(right.x).toBeGreaterThan(0.5);
    // A busy background has no one colour: nothing is proposed from pixels.
    const noise = await sharp({ create: { width: 224, height: 224, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 80 } } }).raw().toBuffer();
    expect(foregroundRegions(new Uint8Array(noise), 224, 224)).toEqual([]);
  });

  it('searches every product of an outfit photo on its own: the very products come first', async () => {
    const r = await lookalike.searchByImage(await outfit(), { k: 3, shopTheLook: true });
    expect(r.looks).toHaveLength(2);
    const tops = r.looks!.sort((a, b) => a.box.x - b.box.x).map((l) => l.results[0].id);
    expect(tops).toEqual([idOf('shirt', 'Red'), idOf('watch', 'Blue')]);
    // Without it, one list.
    expect((await lookalike.searchByImage(await outfit(), { k: 3 })).looks).toBeUndefined();
  });

  it('on a busy background, looks at the photo with its own aspect and finds the products', async () => {
    // Three products side by side on stripes, a wide photo: seen square, at 7 x 7 cells, they join.
    const placed = [['shirt', '#d22'], ['watch', '#23c'], ['bag', '#2a3'], ['trousers', '#111']] as const;
    const layers = await Promise.all(placed.map(async ([shape, colour], i) => ({
      input: await sharp(await drawProduct(shape, colour, 'png', 'none')).resize(120, 160).png().toBuffer(), left: 30 + i * 180, top: 90,
    })));
    const stripes = Array.from({ length: 40 }, (_, i) => `<rect x="${i * 20}" width="10" height="340" fill="#${i % 3 ? 'c9b27c' : '6f8f6a'}"/>`).join('');
    const scene = await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="720" height="340"><rect width="720" height="340" fill="#e8dcc0"/>${stripes}</svg>`)).composite(layers).jpeg().toBuffer();
    const r = await lookalike.searchByImage(scene, { k: 3, shopTheLook: true });
    const found = new Set(r.looks!.flatMap((l) => l.results.map((h) => h.id)));
    const wanted = [idOf('shirt', 'Red'), idOf('watch', 'Blue'), idOf('bag', 'Green'), idOf('trousers', 'Black')];
    expect(wanted.filter((id) => found.has(id)).length).toBeGreaterThanOrEqual(3);
  });
});

describe('the measurements of docs/asking.md', () => {
  it('judge text queries by the labels and find placed products in scenes', async () => {
    const text = await measureText(lookalike, [{ text: 'red shirts', wants: { articleType: ['Shirts'], baseColour: ['Red'] } }, { text: 'watches', wants: { articleType: ['Watches'], baseColour: ['Blue'] } }], 1);
    expect(text.queries.map((q) => [q.matches, q.precision])).toEqual([[1, 1], [4, 0.25]]);
    expect(text.precision).toBe(0.625);
    const look = await measureShopTheLook(lookalike, 2);
    expect(look.products).toBeGreaterThanOrEqual(4);
    expect(look.someRegion).toBeGreaterThan(look.wholePhoto);
    // No articleType + colour group of 13 items in the fixture: no visit to measure.
    expect((await measureRecommend(lookalike, 5)).visits).toBe(0);
    expect((await measurePhotoPlusWords(lookalike, 2)).queries).toBe(0);
  });
});

describe('over HTTP and on the command line', () => {
  let app: FastifyInstance;
  let base: string;
  beforeAll(async () => {
    app = await createServer(lookalike, { webRoot: false });
    base = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/';
    await app.modelReady;
  });
  afterAll(async () => { await app?.close(); });

  const json = (url: string, body: unknown) => fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('POST /api/recommend takes ids as JSON and photos as multipart', async () => {
    const like = [idOf('shirt', 'Red'), idOf('shirt', 'Green')];
    const res = await json('api/recommend', { like, unlike: [idOf('shirt', 'Black')], k: 4, filter: ['articleType=Shirts'] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { query: { kind: string }; results: Array<{ id: string; metadata: Record<string, string>; imageUrl: string }> };
    expect(body.query.kind).toBe('examples');
    expect(body.results.map((r) => r.id)).toEqual([idOf('shirt', 'Blue')]);
    const form = new FormData();
    form.append('like_image', new Blob([new Uint8Array(await drawProduct('watch', '#e90'))], { type: 'image/jpeg' }), 'watch.jpg');
    form.append('unlike', idOf('watch', 'Red'));
    form.append('k', '2');
    const photo = await fetch(`${base}api/recommend`, { method: 'POST', body: form });
    expect(photo.status).toBe(200);
    const answer = (await photo.json()) as { query: { photos: number }; results: Array<{ id: string }> };
    expect(answer.query.photos).toBe(1);
    expect(answer.results.map((r) => r.id)).not.toContain(idOf('watch', 'Red'));
    const none = await json('api/recommend', { like: [] });
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('NO_LIKED_EXAMPLE');
  });

  it('POST /api/search takes words alone or beside a photo, and shop_the_look', async () => {
    const text = await json('api/search', { text: 'blue trouser' });
    const found = (await text.json()) as { query: { kind: string }; space: string; results: Array<{ id: string }> };
    expect(found).toMatchObject({ query: { kind: 'text' }, space: 'text' });
    expect(found.results.map((r) => r.id)).toEqual([idOf('trousers', 'Blue')]);
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(await outfit())], { type: 'image/jpeg' }), 'outfit.jpg');
    form.append('shop_the_look', 'true');
    form.append('text', 'red');
    form.append('text_mode', 'boost');
    form.append('k', '3');
    const res = await fetch(`${base}api/search`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { query: { text: string; textMode: string }; looks: Array<{ box: { x: number }; results: Array<{ id: string; imageUrl: string }> }> };
    expect(body.query).toMatchObject({ text: 'red', textMode: 'boost' });
    expect(body.looks).toHaveLength(2);
    expect(body.looks[0].results[0].imageUrl).toMatch(/^\/images\//);
    const similar = await fetch(`${base}api/items/${idOf('bag', 'Black')}/similar?text=green&k=5`);
    expect(((await similar.json()) as { results: Array<{ metadata: Record<string, string> }> }).results.map((r) => r.metadata.baseColour)).toEqual(['Green', 'Green', 'Green', 'Green']);
    const bad = await json('api/search', { text: '...' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('TEXT_NO_WORDS');
  });

  it('lookalike recommend --like / query --text / query --all-regions', () => {
    const rec = runCli(['recommend', '--index', indexDir, '--like', `${idOf('bag', 'Red')},${idOf('bag', 'Green')}`, '--unlike', idOf('bag', 'Black'), '-k', '3', '--json']);
    expect(rec.code).toBe(0);
    const recommended = JSON.parse(rec.stdout) as { results: Array<{ id: string }> };
    expect(recommended.results).toHaveLength(3);
    expect(recommended.results.map((r) => r.id)).not.toContain(idOf('bag', 'Black'));
    const text = runCli(['query', '--index', indexDir, '--text', 'grene watches']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('searched for "green watches"');
    expect(text.stdout).toContain(idOf('watch', 'Green'));
    const look = runCli(['query', path.join(files, 'outfit.jpg'), '--index', indexDir, '--all-regions', '-k', '1', '--json']);
    expect(look.code).toBe(0);
    const looks = (JSON.parse(look.stdout) as { looks: Array<{ results: Array<{ id: string }> }> }).looks;
    expect(looks.map((l) => l.results[0].id).sort()).toEqual([idOf('shirt', 'Red'), idOf('watch', 'Blue')].sort());
    const csvWithFilter = runCli(['recommend', '--index', indexDir, '--filter', 'gender=Women']);
    expect(csvWithFilter.code).toBe(1);
    expect(csvWithFilter.stderr).toContain('go with --like');
    const missing = runCli(['query', '--index', indexDir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('[BAD_OPTION]');
  });
});
