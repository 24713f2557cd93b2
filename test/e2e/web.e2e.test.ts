import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { DEFAULT_K } from '../../src/defaults.js';
import { applyTuned, tune } from '../../src/lab/tune/tune.js';
import { createServer } from '../../src/server/app.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { ensurePageBuilt } from '../helpers/web-build.js';
import { CHROMIUM, HAS_CHROMIUM, launchChromium } from '../helpers/browser.js';

// The page in a real browser (Debian's chromium, driven by playwright-core) against the real
// server, the real model and a catalog drawn with sharp. Each step leaves a screenshot in
// test-artifacts/web-e2e/ (git-ignored).
if (!HAS_CHROMIUM) {
  console.warn(`web e2e tests skipped: no chromium at ${CHROMIUM}. Install it (apt-get install chromium) or set LOOKALIKE_CHROMIUM.`);
}
const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'web-e2e');
const MAX_UPLOAD = 512 * 1024;

let catalog: string;
let indexDir: string;
let files: string;
let lookalike: Lookalike;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let page: Page;
const offOrigin: string[] = [];
const pageErrors: string[] = [];
const items = defaultItems();
const byId = new Map(items.map((i) => [i.id, i]));

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Waits until the page has finished what it was doing (aria-busy false, status set). */
async function settled(): Promise<void> {
  await page.waitForFunction(() => document.querySelector('main')?.getAttribute('aria-busy') !== 'true' && document.querySelector('#status')?.textContent !== '');
}

async function resultIds(): Promise<string[]> {
  return page.locator('#results a.card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.id!));
}

describe.skipIf(!HAS_CHROMIUM)('the web page in chromium', () => {
  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    const webRoot = await ensurePageBuilt();
    catalog = await makeCatalog(items);
    indexDir = tempDir('lookalike-e2e-');
    await buildIndex({ catalogDir: catalog, indexDir });
    lookalike = await Lookalike.open(indexDir);
    app = await createServer(lookalike, { webRoot, maxUploadBytes: MAX_UPLOAD });
    base = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/';
    await app.modelReady;

    files = tempDir('lookalike-e2e-files-');
    writeFileSync(path.join(files, 'orange-shirt.jpg'), await drawProduct('shirt', '#e90'));
    // A shopper's photo with two products side by side: a red shirt left, a blue watch right.
    const layers = await Promise.all([['shirt', '#d22', 40], ['watch', '#23c', 320]].map(async ([shape, colour, left]) => ({
      input: await sharp(await drawProduct(shape as 'shirt' | 'watch', colour as string)).resize(120, 160).png().toBuffer(), left: left as number, top: 100,
    })));
    writeFileSync(path.join(files, 'two-products.jpg'), await sharp({ create: { width: 480, height: 360, channels: 3, background: '#ffffff' } }).composite(layers).jpeg().toBuffer());
    writeFileSync(path.join(files, 'notes.jpg'), 'Shopping list: milk, bread. Not a photo at all.\n');
    writeFileSync(path.join(files, 'huge.jpg'), await sharp({ create: { width: 1200, height: 1200, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).jpeg({ quality: 100 }).toBuffer());

    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (r) => { if (!r.url().startsWith(base) && !/^(data|blob):/.test(r.url())) offOrigin.push(r.url()); });
    page.on('pageerror', (err) => { pageErrors.push(err.message); });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await lookalike?.close();
    for (const dir of [catalog, indexDir, files]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('opens on an upload area with catalog photos to try', async () => {
    await page.goto(base);
    await expect.poll(() => page.locator('#example-list button').count()).toBe(6);
    await expect.poll(() => page.locator('#filter-gender option').allTextContents()).toEqual(['Any gender', 'Men (8)', 'Women (8)']);
    expect(await page.locator('#upload-help').textContent()).toContain('0.5 MB');
    // Without a trained head there is one notion of similarity: no mode to choose.
    expect(await page.locator('#mode-control').isHidden()).toBe(true);
    await shot('01-start');
  });

  it('shows an uploaded photo beside the most similar products', async () => {
    await page.setInputFiles('#file', path.join(files, 'orange-shirt.jpg'));
    await page.locator('#results a.card').first().waitFor();
    await settled();
    expect(await page.locator('#query-image').isVisible()).toBe(true);
    expect(await page.locator('#query-caption').textContent()).toContain('Your photo');
    const ids = await resultIds();
    // No k in the address: the page sends none and the server's default applies.
    expect(ids).toHaveLength(DEFAULT_K);
    expect(await page.locator('#k').inputValue()).toBe(String(DEFAULT_K));
    expect(ids.slice(0, 4).map((id) => byId.get(id)!.shape)).toEqual(['shirt', 'shirt', 'shirt', 'shirt']);
    const first = page.locator('#results a.card').first();
    expect(await first.textContent()).toMatch(/Test \w+ Shirts.*Shirts · \w+.*similarity 0\.\d{3}/);
    expect(await first.locator('img').getAttribute('loading')).toBe('lazy');
    await shot('02-results');
  });

  it('re-runs the search when a filter changes, and keeps the filter in the URL', async () => {
    await page.selectOption('#filter-gender', 'Women');
    await page.waitForURL(/gender=Women/);
    await expect.poll(async () => (await resultIds()).every((id) => byId.get(id)!.metadata!.gender === 'Women')).toBe(true);
    await settled();
    const ids = await resultIds();
    expect(ids).toHaveLength(DEFAULT_K);
    expect(byId.get(ids[0])!.shape).toBe('shirt');
    expect(await page.locator('#query-note').textContent()).toContain('not part of the link');
    await shot('03-filtered-women');
  });

  it('shows "more like this" for a clicked result, at a URL that can be shared', async () => {
    const target = (await resultIds())[0];
    await page.locator('#results a.card').first().click();
    await page.waitForURL(new RegExp(`id=${target}`));
    await expect.poll(() => page.locator('#query-caption').textContent()).toContain(byId.get(target)!.metadata!.productDisplayName);
    await settled();
    const ids = await resultIds();
    expect(ids).not.toContain(target);
    expect(ids.every((id) => byId.get(id)!.metadata!.gender === 'Women')).toBe(true);
    expect(byId.get(ids[0])!.shape).toBe('shirt');
    await shot('04-more-like-this');
  });

  it('shows the same results after reloading the shared URL', async () => {
    const before = await resultIds();
    const url = page.url();
    await page.reload();
    await page.locator('#results a.card').first().waitFor();
    await settled();
    expect(page.url()).toBe(url);
    expect(await resultIds()).toEqual(before);
    expect(await page.locator('#filter-gender').inputValue()).toBe('Women');
    await shot('05-reloaded');
  });

  it('moves between results with the arrow keys and opens one with Enter', async () => {
    await page.locator('#results a.card').first().focus();
    await page.keyboard.press('ArrowRight');
    const second = (await resultIds())[1];
    expect(await page.evaluate(() => (document.activeElement as HTMLElement).dataset.id)).toBe(second);
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`id=${second}`));
    await settled();
  });

  it('says plainly when nothing is above the threshold, and offers a way out', async () => {
    await page.locator('#threshold').fill('1');
    await page.locator('#empty').waitFor();
    expect(await page.locator('#empty').textContent()).toContain('Nothing above the minimum similarity of 1.00');
    await page.waitForURL(/threshold=1\.00/);
    await shot('06-empty');
    await page.getByRole('button', { name: 'Lower the minimum similarity' }).click();
    await page.waitForURL(/threshold=0\.90/);
    await page.locator('#threshold').fill('0');
    await page.waitForURL((url) => !url.search.includes('threshold'));
    await settled();
  });

  it('explains that a text file renamed .jpg is not a photo', async () => {
    await page.setInputFiles('#file', path.join(files, 'notes.jpg'));
    const error = page.locator('#error');
    await error.waitFor();
    expect(await error.textContent()).toContain('not an image Lookalike can read');
    expect(await error.textContent()).toContain('JPEG, PNG or WebP');
    expect(await error.getAttribute('role')).toBe('alert');
    await shot('07-error-not-an-image');
  });

  it('refuses a photo over the upload limit before sending it', async () => {
    await page.setInputFiles('#file', path.join(files, 'huge.jpg'));
    await expect.poll(() => page.locator('#error').textContent()).toContain('over the limit of 0.5 MB');
    await shot('08-error-too-large');
  });

  it('tells the shopper when the server is busy, with a way to retry', async () => {
    await page.route('**/api/search', (route) => route.fulfill({
      status: 503,
      headers: { 'content-type': 'application/json', 'retry-after': '2' },
      body: JSON.stringify({ error: { code: 'SERVER_BUSY', message: 'the server is busy with other searches. Try again in a moment.' } }),
    }));
    await page.setInputFiles('#file', path.join(files, 'orange-shirt.jpg'));
    await expect.poll(() => page.locator('#error').textContent()).toContain('The server is busy with other searches');
    const retry = page.getByRole('button', { name: /Try again/ });
    expect(await retry.textContent()).toContain('2 s');
    await shot('09-error-busy');
    await page.unroute('**/api/search');
    await retry.click();
    await page.locator('#error').waitFor({ state: 'hidden' });
    await settled();
    expect((await resultIds()).length).toBeGreaterThan(0);
  });

  it('browses the catalog with the same filters, page by page', async () => {
    await page.getByRole('link', { name: 'Browse' }).click();
    await page.waitForURL(/view=browse/);
    await settled();
    expect(await page.locator('#browse-grid a.card').count()).toBe(8);
    expect(await page.locator('#browse-summary').textContent()).toContain('8 products match the filters');
    expect(await page.locator('#page-info').textContent()).toBe('Page 1 of 1');
    await shot('10-browse');
    await page.getByRole('button', { name: 'Clear all filters' }).click();
    await page.waitForURL((url) => !url.search.includes('gender'));
    await expect.poll(() => page.locator('#browse-summary').textContent()).toContain('16 products');
  });

  it('draws the catalog map, and opens more like this from it with the keyboard', async () => {
    const points = items.map((it, i) => ({ id: it.id, x: (i % 4) + (it.shape === 'shirt' ? 10 : 0), y: Math.floor(i / 4) }));
    writeFileSync(path.join(indexDir, 'map.json'), JSON.stringify({ method: 'tsne', attribute: 'articleType', createdAt: new Date().toISOString(), points }));
    try {
      await page.goto(`${base}?view=map`);
      await expect.poll(() => page.locator('#map-legend li').count()).toBe(4);
      expect(await page.locator('#map-colour').inputValue()).toBe('articleType');
      await page.locator('#map-canvas').focus();
      await page.keyboard.press('ArrowLeft');
      await page.locator('#map-tip').waitFor();
      await shot('11-map');
      await page.keyboard.press('Enter');
      await page.waitForURL(/id=/);
      await page.locator('#results a.card').first().waitFor();
    } finally {
      rmSync(path.join(indexDir, 'map.json'), { force: true });
    }
  });

  it('searches only the box the shopper drags over the photo, and offers the regions it found', async () => {
    await page.goto(base);
    await page.setInputFiles('#file', path.join(files, 'two-products.jpg'));
    await page.locator('#results a.card').first().waitFor();
    await settled();
    await expect.poll(() => page.locator('#regions .region').count()).toBeGreaterThan(0);
    const before = await resultIds();
    // Drag over the right half of the photo, where the watch stands.
    const frame = await page.locator('#query-image').boundingBox();
    if (!frame) throw new Error('no photo on the page');
    await page.mouse.move(frame.x + frame.width * 0.6, frame.y + frame.height * 0.15);
    await page.mouse.down();
    await page.mouse.move(frame.x + frame.width * 0.8, frame.y + frame.height * 0.5, { steps: 4 });
    await page.mouse.move(frame.x + frame.width * 0.97, frame.y + frame.height * 0.85, { steps: 4 });
    await page.mouse.up();
    await expect.poll(async () => (await resultIds()).join()).not.toBe(before.join());
    await settled();
    const after = await resultIds();
    expect(byId.get(after[0])!.shape).toBe('watch');
    expect(await page.locator('#crop-box').isVisible()).toBe(true);
    await shot('13-crop');
    // Back to the whole photo: the first results come back.
    await page.locator('#whole-photo').click();
    await expect.poll(async () => (await resultIds()).join()).toBe(before.join());
    await settled();
    expect(await page.locator('#crop-box').isHidden()).toBe(true);
  });

  it('fits a phone screen', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    try {
      await phone.goto(`${base}?id=${items[0].id}&k=6`);
      await phone.locator('#results a.card').first().waitFor();
      expect(await phone.locator('#results a.card').count()).toBe(6);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(await phone.locator('#controls-details').getAttribute('open')).toBeNull();
      await phone.screenshot({ path: path.join(ARTIFACTS, '12-phone.png'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  it('uses the k stored by `tune --apply` in the API and on the page when none is asked for', async () => {
    // The real tuning on the stored vectors, told to try k = 3 only, then --apply's write.
    const result = await tune(lookalike, { ks: [3], compareK: 3, dims: [2048], sample: 0, targetPrecision: 0.01 });
    const tuned = await applyTuned(lookalike, result);
    expect(tuned.k).toBe(3);
    expect(tuned.k).not.toBe(DEFAULT_K);

    const health = await (await fetch(`${base}api/health`)).json() as { defaults: { k: number } };
    expect(health.defaults.k).toBe(3);
    const similar = await (await fetch(`${base}api/items/${items[0].id}/similar`)).json() as { results: unknown[] };
    expect(similar.results).toHaveLength(3);
    const byItem = await fetch(`${base}api/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: items[0].id }) });
    expect(((await byItem.json()) as { results: unknown[] }).results).toHaveLength(3);
    // A photo: the tuned threshold is switched off so that only k limits the answer.
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(await drawProduct('shirt', '#e90'))], { type: 'image/jpeg' }), 'shirt.jpg');
    form.append('threshold', '-1');
    const byPhoto = await fetch(`${base}api/search`, { method: 'POST', body: form });
    expect(((await byPhoto.json()) as { results: unknown[] }).results).toHaveLength(3);
    // An explicit k still wins (with the tuned threshold off, as above).
    expect(((await (await fetch(`${base}api/items/${items[0].id}/similar?k=7&threshold=-1`)).json()) as { results: unknown[] }).results).toHaveLength(7);

    const requests: string[] = [];
    page.on('request', (r) => { if (r.url().includes('/similar')) requests.push(r.url()); });
    await page.goto(`${base}?id=${items[0].id}`);
    await page.locator('#results a.card').first().waitFor();
    await settled();
    expect(await resultIds()).toHaveLength(3);
    expect(await page.locator('#k').inputValue()).toBe('3');
    expect(requests.length).toBeGreaterThan(0);
    for (const url of requests) expect(new URL(url).searchParams.has('k')).toBe(false);
    await shot('13-tuned-k');
  });

  it('loads nothing from outside the app, and raises no script errors', () => {
    expect(offOrigin).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
