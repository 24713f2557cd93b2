import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { Lookalike } from '../../src/lookalike.js';
import { readCatalog } from '../../src/catalog/index.js';
import { createServer, defaultWebRoot } from '../../src/server/app.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { DEV_CATALOG, HAS_DEV_CATALOG, devIndex, devSubsetIds } from './dev-index.js';
import { HAS_CHROMIUM, launchChromium } from '../helpers/browser.js';

// The page on real catalog photos: the shared 1,000-item index of the dev catalog, served by
// the real server, driven in chromium. The query photo is a shirt from outside that subset,
// so it is a photo the index has never seen.
const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'web-data');

let lookalike: Lookalike;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let page: Page;
let shirtPhoto: string;

async function cards(): Promise<Array<{ id: string; text: string }>> {
  return page.locator('#results a.card').evaluateAll((els) => els.map((e) => ({ id: (e as HTMLElement).dataset.id!, text: e.textContent ?? '' })));
}

async function settled(): Promise<void> {
  await page.waitForFunction(() => document.querySelector('main')?.getAttribute('aria-busy') === 'false');
}

describe.skipIf(!HAS_DEV_CATALOG || !HAS_CHROMIUM)('the web page on the dev catalog', () => {
  beforeAll(async () => {
    if (!existsSync(path.join(defaultWebRoot(), 'index.html'))) {
      const { build } = await import('vite');
      await build({ configFile: path.join(PACKAGE_ROOT, 'web', 'vite.config.ts'), logLevel: 'warn' });
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    lookalike = await Lookalike.open(await devIndex());
    app = await createServer(lookalike);
    base = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/';
    await app.modelReady;
    const indexed = new Set(devSubsetIds());
    const shirt = (await readCatalog(DEV_CATALOG)).items.find((i) => i.metadata.articleType === 'Shirts' && i.metadata.gender === 'Men' && !indexed.has(i.id))!;
    shirtPhoto = shirt.imagePath;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await lookalike?.close();
  });

  it('finds mostly shirts for a photo of a shirt', async () => {
    // Ten results, more than the default k, so that the share of shirts means something.
    await page.goto(`${base}?k=10`);
    await page.setInputFiles('#file', shirtPhoto);
    await page.locator('#results a.card').first().waitFor();
    await settled();
    const found = await cards();
    expect(found).toHaveLength(10);
    const shirts = found.filter((c) => /Shirts ·/.test(c.text)).length;
    expect(shirts, found.map((c) => c.text).join('\n')).toBeGreaterThanOrEqual(6);
    await page.screenshot({ path: path.join(ARTIFACTS, '01-shirt-photo.png'), fullPage: true });
  });

  it('keeps only women\'s products once filtered to Women', async () => {
    await page.selectOption('#filter-gender', 'Women');
    await page.waitForURL(/gender=Women/);
    await expect.poll(async () => (await cards()).every((c) => /Women/.test(c.text))).toBe(true);
    await settled();
    const found = await cards();
    expect(found).toHaveLength(10);
    for (const c of found) expect(lookalike.item(c.id).metadata.gender).toBe('Women');
    await page.screenshot({ path: path.join(ARTIFACTS, '02-women.png'), fullPage: true });
  });

  it('shows more like a clicked result, women only, and the same after a reload', async () => {
    const target = (await cards())[0].id;
    await page.locator('#results a.card').first().click();
    await page.waitForURL(new RegExp(`id=${target}`));
    await expect.poll(async () => (await cards()).length).toBe(10);
    await settled();
    const found = await cards();
    expect(found.map((c) => c.id)).not.toContain(target);
    for (const c of found) expect(lookalike.item(c.id).metadata.gender).toBe('Women');
    await page.reload();
    await page.locator('#results a.card').first().waitFor();
    await settled();
    expect((await cards()).map((c) => c.id)).toEqual(found.map((c) => c.id));
    await page.screenshot({ path: path.join(ARTIFACTS, '03-more-like-this.png'), fullPage: true });
  });
});
