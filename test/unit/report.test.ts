import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { parse } from 'csv-parse/sync';
import { evaluate, findNeighbours, neighbourScores } from '../../src/lab/eval/evaluate.js';
import { writeEvalReport } from '../../src/lab/eval/report.js';
import { scoreHistogram } from '../../src/math/stats.js';
import { normaliseRows } from '../../src/search/kernel.js';
import { Random } from '../../src/math/random.js';
import { tempDir } from '../helpers/fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '..', '..', 'test-artifacts');

/** A small synthetic catalog: clustered vectors, labels, and a 2-D map of the clusters. */
function synthetic(n = 360, dim = 32, classes = 6) {
  const rng = new Random(7);
  const centres = Array.from({ length: classes }, () => Float32Array.from({ length: dim }, () => rng.normal()));
  const names = ['Tshirts', 'Shirts', 'Watches', 'Casual Shoes', 'Handbags', 'Kurtas'];
  const colours = ['Black', 'White', 'Blue', 'Red'];
  const data = new Float32Array(n * dim);
  const articleType: string[] = [], baseColour: string[] = [], masterCategory: string[] = [];
  const points: Array<{ x: number; y: number }> = [];
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    for (let j = 0; j < dim; j++) data[i * dim + j] = centres[c][j] + 1.2 * rng.normal();
    articleType.push(names[c]);
    baseColour.push(colours[(i * 7) % 4]);
    masterCategory.push(c === 2 || c === 4 ? 'Accessories' : c === 3 ? 'Footwear' : 'Apparel');
    points.push({ x: 10 * Math.cos(c) + rng.normal(), y: 10 * Math.sin(c) + rng.normal() });
  }
  return { data: normaliseRows(data, dim), dim, ids: articleType.map((_, i) => String(5000 + i)), labels: { articleType, masterCategory, baseColour }, points };
}

const counts = (values: string[]) => [...values.reduce((m, v) => m.set(v, (m.get(v) ?? 0) + 1), new Map<string, number>())].map(([value, count]) => ({ value, count }));

let reportDir: string;

beforeAll(async () => {
  const s = synthetic();
  const result = await evaluate({ matrix: s.data, dim: s.dim, ids: s.ids, labels: s.labels, k: 5 });
  const nb = await findNeighbours(s.data, s.dim, s.ids, 5);
  const { same, different } = neighbourScores(nb, s.labels.articleType);
  reportDir = tempDir('lookalike-report-');
  await writeEvalReport(reportDir, {
    result,
    categories: { masterCategory: counts(s.labels.masterCategory), articleType: counts(s.labels.articleType), baseColour: counts(s.labels.baseColour) },
    scores: { attribute: 'articleType', histogram: scoreHistogram(same, different) },
    map: { points: s.points, values: s.labels.articleType, attribute: 'articleType' },
  });
});

describe('the evaluation report folder', () => {
  it('holds index.html, the charts as PNG and SVG, and CSV tables', () => {
    expect(existsSync(path.join(reportDir, 'index.html'))).toBe(true);
    for (const name of ['category-articleType', 'per-class-articleType', 'confusion-articleType', 'scores-articleType', 'map-articleType']) {
      expect(existsSync(path.join(reportDir, 'charts', `${name}.png`)), name).toBe(true);
      expect(existsSync(path.join(reportDir, 'charts', `${name}.svg`)), name).toBe(true);
    }
    const metrics = parse(readFileSync(path.join(reportDir, 'metrics.csv')), { columns: true }) as Array<Record<string, string>>;
    expect(metrics.map((m) => m.attribute)).toEqual(['articleType', 'masterCategory', 'baseColour']);
    expect(Number(metrics[0]['precision@5'])).toBeGreaterThan(0.5);
    const perClass = parse(readFileSync(path.join(reportDir, 'per-class-articleType.csv')), { columns: true }) as Array<Record<string, string>>;
    expect(perClass).toHaveLength(6);
    const confusion = parse(readFileSync(path.join(reportDir, 'confusion-articleType.csv'))) as string[][];
    expect(confusion[0].slice(1)).toEqual(perClass.map((c) => c.value));
  });
});

describe.skipIf(!existsSync(CHROMIUM))('the report in a browser', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
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

if (!existsSync(CHROMIUM)) {
  console.warn(`report.test.ts: ${CHROMIUM} not found, the browser check is skipped (apt-get install chromium)`);
}
