import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { DEV_CATALOG, HAS_DEV_CATALOG, devIndex, devSubsetIds } from './dev-index.js';
import { trainHead, type TrainReport } from '../../src/train/train.js';
import { writeHeadFile } from '../../src/head/head.js';
import { PHOTO_BLEND } from '../../src/photo/search.js';
import { Lookalike } from '../../src/lookalike.js';
import { buildIndex } from '../../src/indexing/build.js';
import { evaluateIndex } from '../../src/lab/eval/evaluate-index.js';

// The real thing on real photos: 1,000 dev catalog items embedded with ResNet50, a head
// trained on 80% of them, figures on the 20% never trained on.
describe.skipIf(!HAS_DEV_CATALOG)('training a head on the dev catalog', () => {
  let dir: string;
  let report: TrainReport;
  let seconds: number;
  const temps: string[] = [];

  beforeAll(async () => {
    const shared = await devIndex();
    // Train on a copy: the shared index stays plain for the other data tests.
    dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-train-dev-'));
    temps.push(dir);
    for (const f of readdirSync(shared)) if (f.startsWith('index.sqlite') || f === 'cache') cpSync(path.join(shared, f), path.join(dir, f), { recursive: true });
    const started = performance.now();
    // A few hundred shopper-photo views (the default, 3,000, is sized for a whole catalog).
    report = await trainHead({ indexDir: dir, views: 300 });
    seconds = (performance.now() - started) / 1000;
  });

  afterAll(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });

  it('trains in seconds and improves held-out article type precision@5 over the backbone', () => {
    const p5 = report.comparison.find((r) => r.attribute === 'articleType' && r.metric === 'precision@5')!;
    expect(p5.head.style).toBeGreaterThan(p5.backbone + 0.03);
    const colour = report.comparison.find((r) => r.attribute === 'baseColour' && r.metric === 'precision@5')!;
    expect(colour.head.colour).toBeGreaterThan(colour.backbone + 0.1);
    expect(seconds).toBeLessThan(240);
    expect(report.heldOutItems).toBeGreaterThan(150);
  });

  it('`lookalike eval --queries` sees the same held-out figures through the index', async () => {
    const lookalike = await Lookalike.open(dir);
    try {
      expect(lookalike.space().id).toBe(`head:${report.head.id}:balanced`);
      for (const mode of ['style', 'colour'] as const) {
        const result = await evaluateIndex(lookalike, { queries: report.head.meta.holdout.fraction, mode, attributes: ['articleType', 'baseColour'] });
        expect(result.space).toBe(`head:${report.head.id}:${mode}`);
        for (const a of result.attributes) {
          const row = report.comparison.find((r) => r.attribute === a.attribute && r.metric === 'precision@5')!;
          expect(a.precisionAtK).toBeCloseTo(row.head[mode], 3);
        }
      }
    } finally {
      await lookalike.close();
    }
  });

  it('a saved head indexes another part of the catalog (`index --head`), and a photo query uses it', async () => {
    const file = path.join(dir, 'saved.lkhead');
    await writeHeadFile(report.head, file);
    const seen = new Set(devSubsetIds());
    const others = new Set(devSubsetIds(1060).filter((id) => !seen.has(id)));
    const next = mkdtempSync(path.join(os.tmpdir(), 'lookalike-next-season-'));
    temps.push(next);
    await buildIndex({ catalogDir: DEV_CATALOG, indexDir: next, select: (id) => others.has(id), head: file });
    const lookalike = await Lookalike.open(next);
    try {
      expect(lookalike.size).toBe(others.size);
      const id = [...others][0];
      const photo = path.join(DEV_CATALOG, 'images', `${id}.jpg`);
      expect(existsSync(photo)).toBe(true);
      const response = await lookalike.searchByImage(photo, { k: 3, mode: 'style' });
      // Photos are searched in the head's space blended with plain features (PHOTO_BLEND).
      // The head is re-centred on this part of the catalog (head.ts recentredHead): a new id.
      expect(lookalike.head!.head.meta.recentred?.items).toBe(others.size);
      expect(response.space).toBe(`blend(head:${lookalike.head!.head.id}:style*${PHOTO_BLEND.toFixed(2)},backbone:max)`);
      // The photo is in the catalog: its own item comes first, close to cosine 1 (the query
      // is pooled over the product's cells, the catalog vector over the whole photo).
      expect(response.results[0].id).toBe(id);
      expect(response.results[0].score).toBeGreaterThan(0.95);
    } finally {
      await lookalike.close();
    }
  });
});
