import { HAS_CHROMIUM, launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { createServer } from '../../src/server/app.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { ensurePageBuilt } from '../helpers/web-build.js';

// The page with a product of several photos (search/products.ts): the card shows the photo
// that matched, and the shopper flips through the product's others.

let catalog: string;
let indexDir: string;
let files: string;
let lookalike: Lookalike;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let page: Page;

describe.skipIf(!HAS_CHROMIUM)('a product with several photos, in chromium', () => {
  beforeAll(async () => {
    const webRoot = await ensurePageBuilt();
    catalog = await makeCatalog(defaultItems().filter((i) => ['shirt', 'trousers'].includes(i.shape)));
    // The red shirt's second photo: a green bag (a view unlike its packshot).
    const bag = await drawProduct('bag', '#2a3');
    writeFileSync(path.join(catalog, 'images', '1000_2.jpg'), bag);
    files = tempDir('lookalike-photos-e2e-');
    writeFileSync(path.join(files, 'bag.jpg'), bag);
    indexDir = tempDir('lookalike-photos-e2e-index-');
    await buildIndex({ catalogDir: catalog, indexDir });
    lookalike = await Lookalike.open(indexDir);
    app = await createServer(lookalike, { webRoot });
    base = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/';
    await app.modelReady;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await lookalike?.close();
    for (const dir of [catalog, indexDir, files]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the matched photo of a result and flips through the product\'s photos', async () => {
    await page.goto(base);
    await page.setInputFiles('#file', path.join(files, 'bag.jpg'));
    const first = page.locator('#results li').first();
    await first.locator('a.card').waitFor();
    expect(await first.locator('a.card').getAttribute('data-id')).toBe('1000');
    const image = first.locator('a.card img');
    const label = first.locator('.photo-label');
    expect(await image.getAttribute('src')).toBe('/images/1000?photo=1');
    expect(await label.textContent()).toBe('photo 2 of 2 · matched');
    await first.locator('button.photo-next').click();
    expect(await image.getAttribute('src')).toBe('/images/1000');
    expect(await label.textContent()).toBe('photo 1 of 2');
    await expect.poll(() => image.evaluate((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0)).toBe(true);
    await first.locator('button.photo-prev').click();
    expect(await image.getAttribute('src')).toBe('/images/1000?photo=1');
    // Products with one photo have nothing to flip.
    expect(await page.locator('#results li').nth(1).locator('.card-photos').count()).toBe(0);
  });
});
