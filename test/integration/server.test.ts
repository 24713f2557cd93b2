import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { createInterface } from 'node:readline';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { createServer } from '../../src/server/app.js';
import { InferenceQueue } from '../../src/server/queue.js';
import { isLookalikeError } from '../../src/errors.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

// The real thing: a catalog drawn with sharp (4 shapes x 4 colours), indexed with the real
// backbone, served by the real app over real HTTP.
let catalog: string;
let indexDir: string;
let lookalike: Lookalike;
let app: FastifyInstance;
let base: string;
const queue = new InferenceQueue({ concurrency: 1, maxWaiting: 1 });
const MAX_UPLOAD = 256 * 1024;
const MAX_PIXELS = 1_000_000;
const items = defaultItems();
const byId = new Map(items.map((i) => [i.id, i]));
let orangeShirt: Buffer;

beforeAll(async () => {
  catalog = await makeCatalog(items);
  indexDir = tempDir('lookalike-server-');
  await buildIndex({ catalogDir: catalog, indexDir });
  lookalike = await Lookalike.open(indexDir);
  const webRoot = tempDir('lookalike-web-');
  writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>page</title>');
  app = await createServer(lookalike, { queue, maxUploadBytes: MAX_UPLOAD, maxPixels: MAX_PIXELS, webRoot });
  base = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/';
  await app.modelReady;
  // Not a catalog photo: a shirt in a colour the catalog does not have.
  orangeShirt = await drawProduct('shirt', '#e90');
});

afterAll(async () => {
  await app?.close();
  await lookalike?.close();
  for (const dir of [catalog, indexDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

function upload(image: Buffer | string, fields: Record<string, string | string[]> = {}, name = 'photo.jpg', type = 'image/jpeg'): Promise<Response> {
  const form = new FormData();
  form.append('image', new Blob([typeof image === 'string' ? image : new Uint8Array(image)], { type }), name);
  for (const [key, value] of Object.entries(fields)) for (const v of [value].flat()) form.append(key, v);
  return fetch(`${base}api/search`, { method: 'POST', body: form });
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.message.length).toBeGreaterThan(10);
  return body.error;
}

function later() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

/** GET with the path exactly as written, no client-side normalisation. */
function rawGet(pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = http.request({ host: url.hostname, port: url.port, path: pathname, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const get = (url: string) => fetch(base + url.replace(/^\//, ''));

interface Hit { id: string; rank: number; score: number; metadata: Record<string, string>; imageUrl: string }

describe('searching over HTTP', () => {
  it('reports health, readiness and limits', async () => {
    const res = await get('/api/health');
    expect(res.status).toBe(200);
    const health = await res.json();
    expect(health).toMatchObject({
      status: 'ok',
      ready: true,
      model: { state: 'ready' },
      index: { items: 16, facetFields: ['gender', 'masterCategory', 'subCategory', 'articleType', 'baseColour', 'season', 'usage'], hasMap: false },
      limits: { maxUploadBytes: MAX_UPLOAD, maxPixels: MAX_PIXELS, formats: ['jpeg', 'png', 'webp'] },
      queue: { running: 0, waiting: 0, concurrency: 1, maxWaiting: 1 },
      modes: [],
    });
    // The arithmetic queries run in here, and the CPU it relies on (issue 21).
    expect(health.model.arithmetic).toMatchObject({ kernels: expect.stringMatching(/^(u8s8|u8u8|float32)$/), exact: true, cpu: { arch: process.arch } });
    expect(health.model.arithmetic.summary).toMatch(/int8|float32/);
  });

  it('answers a photo upload with ranked shirts, their metadata and image URLs (never file paths)', async () => {
    const res = await upload(orangeShirt, { k: '4' });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.query).toEqual({ kind: 'image', width: 60, height: 80, format: 'jpeg', expanded: expect.any(Boolean) });
    expect(body.space).toBe('backbone:max');
    expect(body.tookMs).toBeGreaterThan(0);
    const results = body.results as Hit[];
    expect(results.map((r) => r.rank)).toEqual([1, 2, 3, 4]);
    expect(results.map((r) => r.metadata.articleType)).toEqual(['Shirts', 'Shirts', 'Shirts', 'Shirts']);
    for (const r of results) {
      expect(Object.keys(r).sort()).toEqual(['id', 'imageUrl', 'metadata', 'rank', 'score']);
      expect(r.imageUrl).toBe(`/images/${r.id}`);
    }
    const scores = results.map((r) => r.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(JSON.stringify(body)).not.toContain(catalog);
  });

  it('takes PNG and WebP as well, sniffed from the bytes whatever the name says', async () => {
    for (const format of ['png', 'webp'] as const) {
      const res = await upload(await drawProduct('watch', '#c33', format), { k: '1' }, 'photo.jpg', 'application/octet-stream');
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.query.format).toBe(format);
      expect(body.results[0].metadata.articleType).toBe('Watches');
    }
  });

  it('applies filters, k and the threshold to a photo search', async () => {
    const women = (await (await upload(orangeShirt, { k: '16', filter: 'gender=Women' })).json()).results as Hit[];
    expect(women.length).toBe(8);
    expect(women.every((r) => r.metadata.gender === 'Women')).toBe(true);

    const two = (await (await upload(orangeShirt, { k: '16', filter: ['gender=Women', 'articleType=Shirts,Watches'] })).json()).results as Hit[];
    expect(two.length).toBe(4);
    expect(new Set(two.map((r) => r.metadata.articleType))).toEqual(new Set(['Shirts', 'Watches']));

    const all = (await (await upload(orangeShirt, { k: '16' })).json()).results as Hit[];
    const cut = all[3].score;
    const above = (await (await upload(orangeShirt, { k: '16', threshold: String(cut) })).json()).results as Hit[];
    expect(above.map((r) => r.id)).toEqual(all.slice(0, 4).map((r) => r.id));

    const none = await upload(orangeShirt, { threshold: '1' });
    expect(none.status).toBe(200);
    expect((await none.json()).results).toEqual([]);
  });

  it('searches by catalog item with JSON {id}, leaving the item itself out', async () => {
    const shirt = items.find((i) => i.shape === 'shirt')!;
    const res = await fetch(`${base}api/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: shirt.id, k: 3 }) });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.query).toEqual({ kind: 'item', id: shirt.id });
    expect(body.results.map((r: Hit) => r.id)).not.toContain(shirt.id);
    expect(body.results.map((r: Hit) => r.metadata.articleType)).toEqual(['Shirts', 'Shirts', 'Shirts']);
  });

  it('answers "more like this" at GET /api/items/:id/similar with the same options', async () => {
    const watch = items.find((i) => i.shape === 'watch')!;
    const res = await get(`/api/items/${watch.id}/similar?k=5&filter=masterCategory=Accessories&mode=style&pooling=avg`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.space).toBe('backbone:avg');
    expect(body.results).toHaveLength(5);
    expect(body.results.slice(0, 3).every((r: Hit) => byId.get(r.id)!.shape === 'watch')).toBe(true);
    expect(body.results.every((r: Hit) => r.metadata.masterCategory === 'Accessories')).toBe(true);
  });
});

describe('the catalog over HTTP', () => {
  it('lists items with filters and pagination', async () => {
    const page = await (await get('/api/items?offset=10&limit=4')).json();
    expect(page).toMatchObject({ total: 16, offset: 10, limit: 4 });
    expect(page.items.map((i: { id: string }) => i.id)).toEqual(items.slice(10, 14).map((i) => i.id));
    const watches = await (await get('/api/items?filter=articleType=watches&limit=100')).json();
    expect(watches.total).toBe(4);
    expect(watches.items.every((i: { metadata: { articleType: string } }) => i.metadata.articleType === 'Watches')).toBe(true);
    const defaults = await (await get('/api/items')).json();
    expect(defaults).toMatchObject({ offset: 0, limit: 24 });
  });

  it('returns one item, and a 404 with a useful message for an unknown id', async () => {
    const res = await get(`/api/items/${items[0].id}`);
    expect(await res.json()).toEqual({ id: items[0].id, metadata: expect.objectContaining({ productDisplayName: items[0].metadata!.productDisplayName }), imageUrl: `/images/${items[0].id}` });
    const missing = await get('/api/items/nope');
    expect(missing.status).toBe(404);
    expect((await errorOf(missing)).code).toBe('ITEM_NOT_FOUND');
    expect((await errorOf(await get('/api/items/nope/similar'))).code).toBe('ITEM_NOT_FOUND');
  });

  it("counts facet values, each field under the other fields' filters", async () => {
    const all = await (await get('/api/facets')).json();
    expect(all.total).toBe(16);
    expect(Object.keys(all.fields)).toEqual(['gender', 'masterCategory', 'subCategory', 'articleType', 'baseColour', 'season', 'usage']);
    expect(all.fields.articleType).toEqual(expect.arrayContaining([{ value: 'Shirts', count: 4 }, { value: 'Watches', count: 4 }]));
    const women = await (await get('/api/facets?filter=gender=Women&filter=articleType=Shirts')).json();
    expect(women.total).toBe(2);
    // gender's own counts ignore the gender filter: choosing Men is still offered, with its count.
    expect(women.fields.gender).toEqual([{ value: 'Men', count: 2 }, { value: 'Women', count: 2 }]);
    expect(women.fields.articleType).toEqual(expect.arrayContaining([{ value: 'Shirts', count: 2 }, { value: 'Handbags', count: 2 }]));
    const one = await (await get('/api/facets?field=year')).json();
    expect(Object.keys(one.fields)).toEqual(['year']);
  });

  it('serves catalog photos by id only', async () => {
    const res = await get(`/images/${items[0].id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(readFileSync(path.join(catalog, 'images', `${items[0].id}.jpg`)));
    // Sent byte for byte (fetch and inject would normalise "..", as browsers do).
    const attacks = ['..%2F..%2F..%2Fetc%2Fpasswd', '..%2Fstyles.csv', '%2Fetc%2Fpasswd', '%2e%2e', '%2e%2e%2fstyles.csv', `${items[0].id}%00.jpg`, '..%5C..%5Cstyles.csv', '../../etc/passwd', '..', '../styles.csv'];
    for (const attack of attacks) {
      const r = await rawGet(`/images/${attack}`);
      expect(r.status, attack).toBe(404);
      expect(JSON.parse(r.body).error.code).toMatch(/ITEM_NOT_FOUND|ROUTE_NOT_FOUND/);
      expect(r.body).not.toContain('root:');
    }
  });

  it('serves the map when `lookalike map` has written one, and says how to make one otherwise', async () => {
    const missing = await get('/api/map');
    expect(missing.status).toBe(404);
    const err = await errorOf(missing);
    expect(err.code).toBe('MAP_NOT_FOUND');
    expect(err.message).toContain('lookalike map');

    const mapFile = path.join(indexDir, 'map.json');
    const points = items.map((it, i) => ({ id: it.id, x: i % 4, y: Math.floor(i / 4) }));
    writeFileSync(mapFile, JSON.stringify({ method: 'tsne', attribute: 'articleType', createdAt: '2026-01-01T00:00:00Z', points: [...points, { id: 'gone', x: 9, y: 9 }] }));
    try {
      const map = await (await get('/api/map')).json();
      expect(map).toMatchObject({ method: 'tsne', attribute: 'articleType' });
      expect(map.points).toHaveLength(17);
      const types = map.attributes.articleType;
      expect(types.values[types.codes[0]]).toBe(items[0].metadata!.articleType);
      expect(types.codes[16]).toBe(-1);
      expect((await (await get('/api/health')).json()).index.hasMap).toBe(true);

      writeFileSync(mapFile, '{ not json');
      const broken = await get('/api/map');
      expect(broken.status).toBe(500);
      expect((await errorOf(broken)).code).toBe('MAP_UNREADABLE');
    } finally {
      rmSync(mapFile, { force: true });
    }
  });
});

describe('request validation and limits', () => {
  it.each([
    ['/api/items/x/similar?k=0', 'k must be at least 1'],
    ['/api/items/x/similar?k=abc', 'k must be a whole number'],
    ['/api/items/x/similar?k=5000', 'k must be at most 200'],
    ['/api/items/x/similar?threshold=2', 'threshold must be at most 1'],
    ['/api/items/x/similar?mode=funky', 'mode must be one of: style, balanced, colour, color'],
    ['/api/items?limit=0', 'limit must be at least 1'],
    ['/api/items?offset=-1', 'offset must be at least 0'],
    ['/api/items?colour=Red', 'unknown query parameter "colour"'],
  ])('refuses %s with a plain-words 400', async (url, text) => {
    const res = await get(url);
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.code).toBe('INVALID_REQUEST');
    expect(err.message).toContain(text);
  });

  it('searches only the crop of a photo, and proposes up to 3 regions where products are', async () => {
    const res = await upload(orangeShirt, { k: '3', crop: '0,0.1,0.5,0.8' });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.query.crop).toEqual({ x: 0, y: 0.1, w: 0.5, h: 0.8 });
    expect(body.results).toHaveLength(3);
    const regions = body.regions as Array<{ x: number; y: number; w: number; h: number; score: number }>;
    expect(regions.length).toBeGreaterThan(0);
    expect(regions.length).toBeLessThanOrEqual(3);
    for (const r of regions) {
      // Inside the crop, in the whole photo's coordinates.
      expect(r.x).toBeGreaterThanOrEqual(0);
      expect(r.x + r.w).toBeLessThanOrEqual(0.5 + 1e-6);
      expect(r.y).toBeGreaterThanOrEqual(0.1 - 1e-6);
      expect(r.y + r.h).toBeLessThanOrEqual(0.9 + 1e-6);
    }
  });

  it('refuses a crop that is not a box inside the photo, saying how to write one', async () => {
    const outside = await upload(orangeShirt, { crop: '0.5,0.5,0.8,0.8' });
    expect(outside.status).toBe(400);
    const err = await errorOf(outside);
    expect(err.code).toBe('BAD_CROP');
    expect(err.message).toContain('x,y,w,h');
    expect((await upload(orangeShirt, { crop: 'left half' })).status).toBe(400);
  });

  it('refuses unknown filter fields and malformed filters with the fields there are', async () => {
    const unknown = await errorOf(await get('/api/items?filter=sex=Women'));
    expect(unknown.code).toBe('UNKNOWN_FILTER_FIELD');
    expect(unknown.message).toContain('gender');
    expect((await errorOf(await get('/api/items?filter=gender'))).code).toBe('BAD_FILTER');
    const inUpload = await upload(orangeShirt, { filter: 'sex=Women' });
    expect(inUpload.status).toBe(400);
    expect((await errorOf(inUpload)).code).toBe('UNKNOWN_FILTER_FIELD');
  });

  it('says what to send when the photo or the id is missing, or the body is not JSON or multipart', async () => {
    const form = new FormData();
    form.append('k', '3');
    const noPhoto = await fetch(`${base}api/search`, { method: 'POST', body: form });
    expect(noPhoto.status).toBe(400);
    expect((await errorOf(noPhoto)).message).toContain('"image"');

    const textField = new FormData();
    textField.append('image', 'not a file');
    const notFile = await fetch(`${base}api/search`, { method: 'POST', body: textField });
    expect(notFile.status).toBe(400);
    expect((await errorOf(notFile)).message).toContain('file upload');

    const noId = await fetch(`${base}api/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"k": 3}' });
    expect(noId.status).toBe(400);
    expect((await errorOf(noId)).message).toContain('"id"');

    const badJson = await fetch(`${base}api/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":' });
    expect(badJson.status).toBe(400);
    expect((await errorOf(badJson)).message).toContain('JSON');

    const text = await fetch(`${base}api/search`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(text.status).toBe(415);
    const err = await errorOf(text);
    expect(err.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(err.message).toContain('text/plain');
  });

  it('refuses a text file renamed .jpg with 415, sniffing the bytes, not the name or type', async () => {
    const res = await upload('just some notes, not a photo\n', {}, 'holiday.jpg', 'image/jpeg');
    expect(res.status).toBe(415);
    const err = await errorOf(res);
    expect(err.code).toBe('IMAGE_UNSUPPORTED');
    expect(err.message).toContain('JPEG, PNG or WebP');
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } }).gif().toBuffer();
    const gifRes = await upload(gif, {}, 'photo.jpg');
    expect(gifRes.status).toBe(415);
    expect((await errorOf(gifRes)).message).toContain('gif');
  });

  it('refuses uploads over the size limit with 413', async () => {
    const big = Buffer.concat([orangeShirt, Buffer.alloc(MAX_UPLOAD + 1024, 7)]);
    const res = await upload(big);
    expect(res.status).toBe(413);
    const err = await errorOf(res);
    expect(err.code).toBe('UPLOAD_TOO_LARGE');
    expect(err.message).toContain('262,144');
  });

  it('refuses images over the decoded pixel limit with 413, before decoding them', async () => {
    // 2000 x 2000 of one colour compresses to a few KB but would decode to 4 megapixels.
    const huge = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#fff' } }).png().toBuffer();
    expect(huge.length).toBeLessThan(MAX_UPLOAD);
    const res = await upload(huge, {}, 'huge.png', 'image/png');
    expect(res.status).toBe(413);
    const err = await errorOf(res);
    expect(err.code).toBe('IMAGE_TOO_LARGE');
    expect(err.message).toContain('2000x2000');
  });

  it('answers a truncated photo with 422', async () => {
    const whole = await sharp({ create: { width: 200, height: 200, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg().toBuffer();
    const res = await upload(whole.subarray(0, Math.floor(whole.length / 2)));
    expect(res.status).toBe(422);
    expect((await errorOf(res)).code).toBe('IMAGE_CORRUPT');
  });

  it('answers 503 with Retry-After when the inference queue is full, and recovers', async () => {
    const gates = [later(), later()];
    const blockers = gates.map((gate) => queue.run(() => gate.promise));
    // One job runs (until its gate opens), one waits: the queue (1 + 1) is full.
    await new Promise((r) => setTimeout(r, 10));
    expect(queue.stats()).toMatchObject({ running: 1, waiting: 1 });
    const busy = await upload(orangeShirt);
    expect(busy.status).toBe(503);
    expect(Number(busy.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await errorOf(busy)).code).toBe('SERVER_BUSY');
    // Search by item needs no inference: it still answers.
    expect((await get(`/api/items/${items[0].id}/similar?k=1`)).status).toBe(200);
    // A bad upload is refused at once, without queueing.
    expect((await upload('not an image', {}, 'x.jpg')).status).toBe(415);
    for (const gate of gates) gate.resolve();
    await Promise.all(blockers);
    expect((await upload(orangeShirt)).status).toBe(200);
  });

  it('survives a burst: every answer is 200 or 503, never a crash', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => upload(orangeShirt, { k: '2' })));
    const statuses = answers.map((r) => r.status);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    expect(statuses).toContain(200);
    expect(statuses).toContain(503);
    await Promise.all(answers.map((r) => r.json()));
    expect(queue.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('answers unknown routes with a JSON 404 pointing to the OpenAPI document', async () => {
    const res = await get('/api/nothing-here');
    expect(res.status).toBe(404);
    const err = await errorOf(res);
    expect(err.code).toBe('ROUTE_NOT_FOUND');
    expect(err.message).toContain('/api/openapi.json');
  });
});

describe('the OpenAPI document and the page', () => {
  // The page's API types (web/src/api-schema.ts) are generated from this server's live
  // document; a schema change without regenerating them fails here. To regenerate:
  // LOOKALIKE_WRITE_API_TYPES=1 npx vitest run test/integration/server.test.ts -t "page's API types"
  it("matches the page's API types, generated from /api/openapi.json by openapi-typescript", async () => {
    const { default: openapiTS, astToString } = await import('openapi-typescript');
    const doc = await (await get('/api/openapi.json')).json();
    const header = '// Generated by openapi-typescript from GET /api/openapi.json: do not edit.\n'
      + '// Regenerate: LOOKALIKE_WRITE_API_TYPES=1 npx vitest run test/integration/server.test.ts -t "page\'s API types"\n\n';
    const generated = header + astToString(await openapiTS(doc));
    const file = path.join(PACKAGE_ROOT, 'web', 'src', 'api-schema.ts');
    if (process.env.LOOKALIKE_WRITE_API_TYPES) writeFileSync(file, generated);
    expect(generated).toBe(readFileSync(file, 'utf8'));
  });

  it('describes every route, with the upload as a binary field', async () => {
    const res = await get('/api/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(['/api/facets', '/api/health', '/api/health/live', '/api/health/ready', '/api/items', '/api/items/{id}', '/api/items/{id}/similar', '/api/map', '/api/recommend', '/api/search', '/images/{id}']);
    const body = doc.paths['/api/search'].post.requestBody.content;
    expect(body['multipart/form-data'].schema.properties.image).toMatchObject({ type: 'string', format: 'binary' });
    // JSON: an item ("more like this") or words alone.
    expect(body['application/json'].schema.anyOf).toEqual([{ required: ['id'] }, { required: ['text'] }]);
    expect(doc.paths['/api/recommend'].post.requestBody.content['multipart/form-data'].schema.properties.like_image.anyOf[0]).toMatchObject({ type: 'string', format: 'binary' });
    expect(doc.paths['/api/items'].get.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['filter', 'offset', 'limit']));
    expect(doc.components.schemas.Error).toBeDefined();
    // The route schemas are untouched: a second server still validates uploads as files.
    const again = await createServer(lookalike, { warmUp: false, webRoot: false });
    try {
      const url = await again.listen({ port: 0, host: '127.0.0.1' });
      const form = new FormData();
      form.append('image', 'text, not a file');
      const r = await fetch(`${url}/api/search`, { method: 'POST', body: form });
      expect(r.status).toBe(400);
      expect((await errorOf(r)).message).toContain('file upload');
    } finally {
      await again.close();
    }
  });

  it('serves the built page with a strict Content-Security-Policy', async () => {
    const res = await get('/');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<title>page</title>');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('says how to build the page when it is missing, and still serves the API', async () => {
    const bare = await createServer(lookalike, { warmUp: false, webRoot: path.join(tempDir(), 'missing') });
    const page = await bare.inject({ method: 'GET', url: '/' });
    expect(page.body).toContain('npm run build');
    expect((await bare.inject({ method: 'GET', url: `/images/${items[0].id}` })).statusCode).toBe(200);
    await bare.close();
  });
});

describe('the inference queue', () => {

  it('runs jobs in arrival order, a bounded number at once', async () => {
    const q = new InferenceQueue({ concurrency: 2, maxWaiting: 5 });
    const order: number[] = [];
    let running = 0;
    let most = 0;
    await Promise.all([0, 1, 2, 3, 4, 5].map((i) => q.run(async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5));
      order.push(i);
      running--;
    })));
    expect(most).toBe(2);
    expect(order.slice(0, 2).sort()).toEqual([0, 1]);
    expect(q.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('refuses beyond its waiting places with SERVER_BUSY and a retry delay', async () => {
    const q = new InferenceQueue({ concurrency: 1, maxWaiting: 1 });
    const gate = later();
    const first = q.run(() => gate.promise);
    const second = q.run(async () => 'second');
    let refused: unknown;
    await q.run(async () => 'third').catch((err) => { refused = err; });
    expect(isLookalikeError(refused, 'SERVER_BUSY')).toBe(true);
    expect((refused as { params: { retryAfter: number } }).params.retryAfter).toBeGreaterThanOrEqual(1);
    gate.resolve();
    await first;
    expect(await second).toBe('second');
  });

  it('drops a waiting job whose client went away, and keeps going after a failing job', async () => {
    const q = new InferenceQueue({ concurrency: 1, maxWaiting: 2 });
    const gate = later();
    const first = q.run(() => gate.promise);
    const gone = new AbortController();
    let ran = false;
    const abandoned = q.run(async () => { ran = true; }, gone.signal);
    gone.abort();
    await expect(abandoned).rejects.toBeDefined();
    expect(q.stats().waiting).toBe(0);
    gate.resolve();
    await first;
    expect(ran).toBe(false);
    await expect(q.run(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await q.run(async () => 'ok')).toBe('ok');
    expect(q.stats()).toMatchObject({ running: 0, waiting: 0 });
  });
});

describe('lookalike serve', () => {
  it('prints the URL and its start-up time, serves, says when the model is ready, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(PACKAGE_ROOT, 'src/cli/main.ts'), 'serve', '--index', indexDir, '--port', '0'], { cwd: PACKAGE_ROOT, env: { ...process.env, LOOKALIKE_DRAIN_SECONDS: '0' } });
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.once('exit', () => reject(new Error(`serve exited: ${lines.join('\n')}`)));
        createInterface({ input: child.stdout }).on('line', (record) => {
          // Every line is a pino JSON record with a timestamp; the message is its "msg".
          const parsed = JSON.parse(record) as { msg: string; time: string };
          expect(Date.parse(parsed.time)).toBeGreaterThan(0);
          const line = parsed.msg;
          lines.push(line);
          const m = /^Listening on (http:\/\/127\.0\.0\.1:\d+\/) \(started in \d+\.\d\d s\)$/.exec(line);
          if (m) resolve(m[1]);
        });
      });
      expect(lines).toContain(`Lookalike: 16 items from ${indexDir}`);
      const health = await (await fetch(`${url}api/health`)).json();
      expect(health.index.items).toBe(16);
      await expect.poll(() => lines.some((l) => l.startsWith('Model ready in')), { timeout: 120_000 }).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('says so in one line when the port is taken', () => {
    const port = new URL(base).port;
    const r = runCli(['serve', '--index', indexDir, '--port', port]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
  });
});
