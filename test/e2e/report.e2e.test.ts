import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { writeSyntheticEvalReport } from '../helpers/eval-report.js';
import { CHROMIUM, HAS_CHROMIUM, launchChromium } from '../helpers/browser.js';

const ARTIFACTS = path.resolve(import.meta.dirname, '..', '..', 'test-artifacts');

let reportDir: string;

beforeAll(async () => {
  reportDir = await writeSyntheticEvalReport();
});

describe.skipIf(!HAS_CHROMIUM)('the report in a browser', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('shows the charts and the map (screenshot in test-artifacts/)', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`file://${path.join(reportDir, 'index.html')}`);
    await page.waitForLoadState('load');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'eval-report.png'), fullPage: true });

    const charts = await page.$$eval('figure.chart', (figs) => figs.map((f) => {
      const box = f.getBoundingClientRect();
      const img = f.querySelector('img');
      return { name: f.getAttribute('data-chart'), width: box.width, height: box.height, svg: !!f.querySelector('svg'), imgLoaded: img ? img.complete && img.naturalWidth > 0 : null };
    }));
    const names = charts.map((c) => c.name);
    for (const expected of ['category-articleType', 'scores-articleType', 'per-class-articleType', 'confusion-articleType', 'map-articleType']) {
      expect(names).toContain(expected);
    }
    for (const c of charts) {
      expect(c.width, c.name!).toBeGreaterThan(150);
      expect(c.height, c.name!).toBeGreaterThan(80);
    }
    const map = charts.find((c) => c.name === 'map-articleType')!;
    expect(map.imgLoaded).toBe(true);
    expect(charts.filter((c) => c.svg).length).toBeGreaterThanOrEqual(6);
    // The charts drew marks: bars and the histogram are SVG paths inside the page.
    expect(await page.locator('figure[data-chart="category-articleType"] svg path').count()).toBeGreaterThan(6);
    await page.close();
  });
});

if (!HAS_CHROMIUM) {
  console.warn(`report.e2e.test.ts: ${CHROMIUM} not found, the browser check is skipped (apt-get install chromium)`);
}
