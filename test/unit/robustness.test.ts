import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { PERTURBATIONS, perturbPhoto } from '../../src/eval/perturb.js';
import { activeBlobs, productMask } from '../../src/model/localise.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

let catalog: string;
let indexDir: string;

beforeAll(async () => {
  catalog = await makeCatalog(defaultItems());
  indexDir = path.join(tempDir(), 'index');
  await buildIndex({ catalogDir: catalog, indexDir, batchSize: 8 });
});

/** A 480x480 white photo with the given products pasted at (left, top), each 120x160. */
async function scene(products: Array<{ shape: 'shirt' | 'watch' | 'bag' | 'trousers'; colour: string; left: number; top: number }>): Promise<Buffer> {
  const layers = await Promise.all(products.map(async (p) => ({ input: await sharp(await drawProduct(p.shape, p.colour)).resize(120, 160).png().toBuffer(), left: p.left, top: p.top })));
  return sharp({ create: { width: 480, height: 480, channels: 3, background: '#ffffff' } }).composite(layers).jpeg().toBuffer();
}

describe('shopper photos (eval/perturb)', () => {
  it('draws every kind of photo reproducibly for a seed, and differently for another seed', async () => {
    const file = path.join(catalog, 'images', '1000.jpg');
    const other = path.join(catalog, 'images', '1005.jpg');
    for (const kind of PERTURBATIONS) {
      const a = await perturbPhoto(file, kind, 7, [other, other]);
      const b = await perturbPhoto(file, kind, 7, [other, other]);
      const c = await perturbPhoto(file, kind, 8, [other, other]);
      expect(a.equals(b), kind).toBe(true);
      expect(a.equals(c), kind).toBe(false);
      const meta = await sharp(a).metadata();
      expect([meta.format, meta.width, meta.height], kind).toEqual(['jpeg', 240, 320]);
    }
  });
});

describe('localising the product in a photo', () => {
  it('finds a small product off-centre and proposes its region first', async () => {
    const lookalike = await Lookalike.open(indexDir);
    try {
      const photo = await scene([{ shape: 'shirt', colour: '#d22', left: 340, top: 300 }]);
      const response = await lookalike.searchByImage(photo, { k: 3 });
      const [first] = response.regions ?? [];
      expect(first).toBeDefined();
      // The shirt sits in the bottom-right quarter: the region's centre must too.
      expect(first.x + first.w / 2).toBeGreaterThan(0.5);
      expect(first.y + first.h / 2).toBeGreaterThan(0.5);
    } finally {
      await lookalike.close();
    }
  });

  it('keeps the largest blob of above-mean cells as the product mask', () => {
    // 4x4 map, one channel: a 2x2 blob top-left and a single hot cell bottom-right.
    const act = new Float32Array([5, 5, 0, 0, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    expect(activeBlobs(act, 4, 4).map((b) => b.cells.length)).toEqual([4, 1]);
    const mask = productMask({ data: act, offset: 0, channels: 1, gridH: 4, gridW: 4 });
    expect(Array.from(mask)).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('searches only the box the shopper drew: each crop of a two-product photo finds its own product', async () => {
    const lookalike = await Lookalike.open(indexDir);
    try {
      const photo = await scene([{ shape: 'shirt', colour: '#d22', left: 40, top: 160 }, { shape: 'watch', colour: '#23c', left: 320, top: 160 }]);
      const left = await lookalike.searchByImage(photo, { k: 1, crop: { x: 0, y: 0.2, w: 0.45, h: 0.6 } });
      const right = await lookalike.searchByImage(photo, { k: 1, crop: { x: 0.55, y: 0.2, w: 0.45, h: 0.6 } });
      expect(left.results[0].metadata.articleType).toBe('Shirts');
      expect(right.results[0].metadata.articleType).toBe('Watches');
      // Regions come back in the whole photo's coordinates.
      for (const r of right.regions ?? []) expect(r.x).toBeGreaterThanOrEqual(0.55 - 1e-6);
    } finally {
      await lookalike.close();
    }
  });
});

describe('lookalike robustness', () => {
  it('reports recall and precision per kind and overall for each query pooling, as JSON and as a report with examples', () => {
    const report = path.join(tempDir(), 'robustness');
    const r = runCli(['robustness', '--index', indexDir, '--queries', '12', '--seed', '3', '--json', '--report', report]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { queries: number; rows: Array<{ kind: string; localise: string; spaceLabel: string; queries: number; recallAt1: number; recallAt10: number; precisionAt5: number }> };
    expect(result.queries).toBe(12);
    for (const loc of ['none', 'scda']) {
      const rows = result.rows.filter((row) => row.localise === loc && row.spaceLabel === 'plain');
      expect(rows.map((row) => row.kind).sort()).toEqual([...PERTURBATIONS, 'overall'].sort());
      const overall = rows.find((row) => row.kind === 'overall');
      expect(overall?.queries).toBe(12);
      for (const row of rows) {
        expect(row.recallAt1).toBeLessThanOrEqual(row.recallAt10);
        expect(row.precisionAt5).toBeGreaterThanOrEqual(0);
        expect(row.precisionAt5).toBeLessThanOrEqual(1);
      }
    }
    const html = readFileSync(path.join(report, 'index.html'), 'utf8');
    expect(html).toContain('busy background');
    expect(existsSync(path.join(report, 'examples', 'query-0.jpg'))).toBe(true);
    expect(existsSync(path.join(report, 'per-kind.csv'))).toBe(true);
    // Same seed, same photos, same figures.
    const again = runCli(['robustness', '--index', indexDir, '--queries', '12', '--seed', '3', '--json']);
    expect(JSON.parse(again.stdout).rows).toEqual(result.rows);
    // Through the approximate index (on so small a catalog it answers exactly): the same figures.
    const ann = runCli(['robustness', '--index', indexDir, '--queries', '12', '--seed', '3', '--search', 'ann', '--json']);
    expect(ann.code, ann.stderr).toBe(0);
    expect(JSON.parse(ann.stdout).rows).toEqual(result.rows);
  });
});
