import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { createServer } from '../../src/server/app.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { ensurePageBuilt } from '../helpers/web-build.js';
import { HAS_CHROMIUM, launchChromium } from '../helpers/browser.js';

// Asking the way shoppers ask, in a real browser (as web.e2e.test.ts drives it): "like" /
// "not this" refine the results, words narrow them, and an outfit photo shows a box and a
// strip of results per product. Screenshots go to test-artifacts/asking-e2e/ (git-ignored).
const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'asking-e2e');

let catalog: string;
let indexDir: string;
let files: string;
let lookalike: Lookalike;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const items = defaultItems();
const byId = new Map(items.map((i) => [i.id, i]));
const idOf = (shape: string, colour: string) => items.find((i) => i.shape === shape && i.metadata!.baseColour === colour)!.id;

const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
const settled = () => page.waitForFunction(() => document.querySelector('main')?.getAttribute('aria-busy') !== 'true' && document.querySelector('#status')?.textContent !== '');
const resultIds = () => page.locator('#results a.card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.id!));

describe.skipIf(!HAS_CHROMIUM)('asking the way shoppers ask, in chromium', () => {
  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    const webRoot = await ensurePageBuilt();
    catalog = await makeCatalog(items);
    indexDir = tempDir('lookalike-asking-e2e-');
    await buildIndex({ catalogDir: catalog, indexDir });
    lookalike = await Lookalike.open(indexDir);
    app = await createServer(lookalike, { webRoot });
    base = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/';
    await app.modelReady;
    files = tempDir('lookalike-asking-e2e-files-');
    const layers = await Promise.all([['shirt', '#d22', 40], ['watch', '#23c', 320]].map(async ([shape, colour, left]) => ({
      input: await sharp(await drawProduct(shape as 'shirt' | 'watch', colour as string)).resize(120, 160).png().toBuffer(), left: left as number, top: 100,
    })));
    writeFileSync(path.join(files, 'outfit.jpg'), await sharp({ create: { width: 480, height: 360, channels: 3, background: '#ffffff' } }).composite(layers).jpeg().toBuffer());
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => { pageErrors.push(err.message); });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await lookalike?.close();
    for (const dir of [catalog, indexDir, files]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('"not this" and "like" on a result refine the list without a new search', async () => {
    const start = idOf('shirt', 'Red');
    await page.goto(`${base}?id=${start}&k=8`);
    await page.locator('#results a.card').first().waitFor();
    await settled();
    const before = await resultIds();
    expect(before).toHaveLength(8);
    // "Not this" on the first result: it leaves the list, and the list is searched again.
    const rejected = before[0];
    await page.getByRole('button', { name: new RegExp(`^Not this: fewer like ${byId.get(rejected)!.metadata!.productDisplayName}`) }).click();
    await expect.poll(async () => (await resultIds()).includes(rejected)).toBe(false);
    await settled();
    expect(await page.locator('#feedback').textContent()).toContain('1 marked "not this"');
    // "Like" on another: it leaves the list too (examples never come back) and is counted.
    const liked = (await resultIds())[1];
    await page.getByRole('button', { name: new RegExp(`^Like ${byId.get(liked)!.metadata!.productDisplayName}`) }).click();
    await expect.poll(async () => (await resultIds()).includes(liked)).toBe(false);
    await settled();
    expect(await page.locator('#feedback').textContent()).toContain('1 liked and 1 marked "not this"');
    expect(await resultIds()).not.toContain(start);
    expect(await page.locator('#results-title').textContent()).toBe('Refined with your likes');
    await shot('01-refined');
    await page.getByRole('button', { name: 'Undo the refinements' }).click();
    await expect.poll(resultIds).toEqual(before);
  });

  it('a text box narrows the results to products holding the words, and searches by words alone', async () => {
    const before = await resultIds();
    await page.fill('#text', 'green');
    await page.locator('#words button[type=submit]').click();
    await page.waitForURL(/q=green/);
    await expect.poll(async () => (await resultIds()).every((id) => byId.get(id)!.metadata!.baseColour === 'Green')).toBe(true);
    await settled();
    const narrowed = await resultIds();
    expect(narrowed.length).toBeGreaterThan(0);
    expect(narrowed.length).toBeLessThan(before.length);
    await shot('02-words');
    // Words alone (no photo, no item): products matching them, a typo forgiven.
    await page.goto(`${base}?q=${encodeURIComponent('blue wacthes')}`);
    await page.locator('#results a.card').first().waitFor();
    await settled();
    expect(await resultIds()).toEqual([idOf('watch', 'Blue')]);
    expect(await page.locator('#status').textContent()).toContain('"blue watches"');
    await shot('03-words-alone');
  });

  it('an outfit photo shows a box and a strip of results for each product', async () => {
    await page.goto(base);
    await page.locator('#pick').waitFor();
    await page.setInputFiles('#file', path.join(files, 'outfit.jpg'));
    await page.locator('#results a.card').first().waitFor();
    await settled();
    await page.check('#shop-look');
    await page.locator('.look-box').nth(1).waitFor();
    await settled();
    expect(await page.locator('.look-box').count()).toBe(2);
    const strips = page.locator('#looks .look');
    expect(await strips.count()).toBe(2);
    const firsts = await strips.evaluateAll((looks) => looks.map((l) => (l.querySelector('a.card') as HTMLElement).dataset.id!));
    expect(firsts.sort()).toEqual([idOf('shirt', 'Red'), idOf('watch', 'Blue')].sort());
    await shot('04-shop-the-look');
    expect(pageErrors).toEqual([]);
  });
});
