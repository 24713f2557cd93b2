import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { Embedder } from '../../src/model/embedder.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { applyTuned, rebuildCommand, tune, type TuneResult } from '../../src/lab/tune/tune.js';
import { writeTuneReport } from '../../src/lab/tune/report.js';
import { defaultItems, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

describe('tuning an index', () => {
  let embedder: Embedder;
  let catalog: string;
  let indexDir: string;
  let result: TuneResult;

  beforeAll(async () => {
    embedder = await Embedder.create('resnet50-imagenet');
    catalog = await makeCatalog(defaultItems());
    indexDir = path.join(tempDir(), 'index');
    // A new index's default (int8 at 224x224): the first image setting tuned is the index's
    // own, and the sweep runs the index's int8 model (a float32 one is refused by buildIndex).
    await buildIndex({ catalogDir: catalog, indexDir, batchSize: 8 });
    const lookalike = await Lookalike.open(indexDir);
    try {
      result = await tune(lookalike, {
        dims: [2048, 8], ks: [1, 3], compareK: 3, targetPrecision: 0.5, sample: 16,
        imageSettings: [{ width: 224, height: 224, resize: 'stretch' }, { width: 128, height: 128, resize: 'pad' }],
      });
    } finally {
      await lookalike.close();
    }
  });

  afterAll(async () => {
    await embedder?.release();
  });

  it('sweeps pooling, size and k on the stored vectors', () => {
    expect(result.items).toBe(16);
    const combos = result.vector.map((r) => `${r.pooling}/${r.dims}/${r.k}`).sort();
    expect(combos).toEqual(['avg/2048/1', 'avg/2048/3', 'avg/8/1', 'avg/8/3', 'max/2048/1', 'max/2048/3', 'max/8/1', 'max/8/3']);
    for (const r of result.vector) {
      expect(r.metrics.articleType.precisionAtK).toBeGreaterThanOrEqual(0);
      expect(r.metrics.articleType.precisionAtK).toBeLessThanOrEqual(1);
      expect(r.matrixBytes).toBe(16 * r.dims * 4);
    }
    expect(['max', 'avg']).toContain(result.best.pooling);
    expect(result.ks).toContain(result.best.k);
    expect(result.threshold.same + result.threshold.different).toBe(16 * 3);
  });

  it('re-embeds a sample for image settings and reuses the stored vectors for the index\'s own', () => {
    const rows = result.image!.rows;
    expect(rows.map((r) => `${r.width}x${r.height} ${r.resize}`)).toEqual(['224x224 stretch', '128x128 pad']);
    expect(rows[0].current).toBe(true);
    expect(rows[1].current).toBe(false);
    expect(rows[1].items).toBe(16);
    expect(rows[1].imagesPerSecond).toBeGreaterThan(0);
    expect(rows[1].relativeCost).toBeCloseTo((128 * 128) / (224 * 224), 6);
    for (const r of rows) expect(r.queryMs).toBeGreaterThan(0);
    expect(rebuildCommand(catalog, indexDir, rows[1])).toContain('--size 128x128 --resize pad');
    expect(rebuildCommand(catalog, indexDir, rows[1], 'int8')).not.toContain('--precision');
    expect(rebuildCommand(catalog, indexDir, rows[1], 'fp32')).toMatch(/--resize pad --precision fp32$/);
  });

  it('writes a report with tuning curves and CSV tables', async () => {
    const dir = tempDir('lookalike-tune-report-');
    const report = await writeTuneReport(dir, result);
    const html = readFileSync(report.html, 'utf8');
    expect(html).toContain('sample of 16 items');
    for (const name of ['tune-precision-vs-dims', 'tune-precision-vs-k', 'tune-threshold-histogram', 'tune-quality-vs-speed']) {
      expect(existsSync(path.join(dir, 'charts', `${name}.png`)), name).toBe(true);
    }
    expect(readFileSync(path.join(dir, 'tune-vectors.csv'), 'utf8').split('\n')[0]).toContain('pooling,dims,k');
    expect(existsSync(path.join(dir, 'tune-images.csv'))).toBe(true);
  });

  it('--apply stores pooling, k and threshold, and searches then use them', async () => {
    const dir = path.join(tempDir(), 'index');
    await buildIndex({ catalogDir: catalog, indexDir: dir, embedder });
    const lookalike = await Lookalike.open(dir);
    const fake: TuneResult = { ...result, best: { pooling: 'avg', k: 2, threshold: 0.123456 }, attribute: 'articleType' };
    try {
      const applied = await applyTuned(lookalike, fake);
      expect(applied).toMatchObject({ pooling: 'avg', k: 2, threshold: 0.1234, space: 'backbone:avg' });
    } finally {
      await lookalike.close();
    }
    const store = SqliteStore.open(dir, { readonly: true });
    const manifest = store.getManifest()!;
    store.close();
    expect(manifest.settings.pooling).toBe('avg');
    expect(manifest.extensions?.tuned).toMatchObject({ k: 2, threshold: 0.1234 });

    const reopened = await Lookalike.open(dir);
    try {
      expect(reopened.defaults()).toEqual({ k: 2, threshold: 0.1234 });
      const response = await reopened.searchById('1000');
      expect(response.space).toBe('backbone:avg');
      expect(response.results).toHaveLength(2);
      // The tuned threshold is a cosine of the avg space: it does not carry over to max.
      expect(reopened.defaults(reopened.space({ pooling: 'max' }))).toEqual({ k: 2, threshold: undefined });
      expect((await reopened.searchById('1000', { k: 4 })).results).toHaveLength(4);
    } finally {
      await reopened.close();
    }
  });

  it('runs from the command line and applies the result', () => {
    const dir = path.join(tempDir(), 'index');
    const built = runCli(['index', catalog, '--index', dir, '--json']);
    expect(built.code).toBe(0);
    const r = runCli(['tune', '--index', dir, '--sample', '0', '--dims', '2048,8', '--k', '1,3', '--compare-k', '3', '--target-precision', '0.5', '--apply']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('suggested:');
    expect(r.stdout).toContain('pooling:');
    expect(r.stderr).toContain('applied to');
    const store = SqliteStore.open(dir, { readonly: true });
    expect(store.getManifest()!.extensions?.tuned).toBeTruthy();
    store.close();
    const bad = runCli(['tune', '--index', dir, '--sizes', '224by224']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('224x224');
  });
});
