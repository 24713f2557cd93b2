/**
 * Training a head where the real backbone runs: an index built with a saved head, and
 * shopper-photo views embedded by the CNN. The rest of training, on synthetic vectors,
 * is test/unit/train.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import { DEFAULT_LOCALISATION, Lookalike } from '../../src/lookalike.js';
import { buildIndex } from '../../src/indexing/build.js';
import { isHeldOut } from '../../src/catalog/split.js';
import { trainHead, VIEW_TASK, type TrainOptions } from '../../src/train/train.js';
import { backboneFeatures, decodeHead, encodeHead, writeHeadFile } from '../../src/head/head.js';
import { makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';
import { decodeViews, VIEW_SEED_BASE, VIEWS_FILE } from '../../src/train/views.js';
import { QUERY_HOLDOUT } from '../../src/lab/eval/robustness.js';
import { perturbPhoto, type Perturbation } from '../../src/photo/synthetic.js';

/** Small network settings so each training run takes a second or two; synthetic items have no photos to draw views of. */
const SMALL: Partial<TrainOptions> = { hidden: 64, dim: 16, colourDim: 8, reduced: 48, epochs: 40, patience: 10, views: 0 };

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('index --head (real backbone)', () => {
  it('builds another catalog\'s index with a saved head, and refuses it for another image preparation', async () => {
    const catalog = await makeCatalog();
    const trained = tempDir('lookalike-trained-');
    const next = tempDir('lookalike-next-');
    const refused = tempDir('lookalike-refused-');
    dirs.push(catalog, trained, next, refused);
    await buildIndex({ catalogDir: catalog, indexDir: trained });
    const report = await trainHead({ indexDir: trained, ...SMALL, epochs: 5, labels: ['articleType', 'baseColour'], holdout: 0.1, compare: false });
    const file = path.join(trained, 'saved.lkhead');
    await writeHeadFile(report.head, file);

    await buildIndex({ catalogDir: catalog, indexDir: next, head: file });
    const lookalike = await Lookalike.open(next);
    try {
      // Carried to this index, the head is re-centred on its catalog's vectors: a new id,
      // the same network, and its inputs' mean is this catalog's.
      const carried = lookalike.head!.head;
      expect(carried.meta.recentred?.items).toBe(16);
      expect(carried.id).not.toBe(report.head.id);
      expect(carried.tensors.get('w1')).toEqual(report.head.tensors.get('w1'));
      const raw = lookalike.indexView().rawVectors();
      const feats = backboneFeatures(raw, 0, raw.n, carried.meta.features.power);
      const d = 2 * raw.dim;
      const mean = carried.tensors.get('reduce.mean')!;
      for (const j of [0, 7, d - 1]) {
        let m = 0;
        for (let i = 0; i < raw.n; i++) m += feats[i * d + j] / raw.n;
        expect(mean[j]).toBeCloseTo(m, 5);
      }
      expect(lookalike.space().id).toBe(`head:${carried.id}:balanced`);
      const response = await lookalike.searchByImage(readFileSync(path.join(catalog, 'images', '1000.jpg')), { k: 3, mode: 'colour' });
      expect(response.space).toBe(lookalike.photoSpace({ mode: 'colour' }).id);
      expect(response.results).toHaveLength(3);
      expect(response.results.every((r) => Number.isFinite(r.score))).toBe(true);
    } finally {
      await lookalike.close();
    }

    await expect(buildIndex({ catalogDir: catalog, indexDir: refused, head: file, settings: { resize: 'pad' } })).rejects.toMatchObject({ code: 'HEAD_MISMATCH' });
    // Refused before anything was embedded: no half-made index is left for `info` to trip on
    // (the folder, which existed before, stays).
    expect(existsSync(path.join(refused, 'index.sqlite'))).toBe(false);
    expect(existsSync(refused)).toBe(true);
    writeFileSync(path.join(refused, 'junk.lkhead'), 'junk');
    await expect(buildIndex({ catalogDir: catalog, indexDir: refused, head: path.join(refused, 'junk.lkhead') })).rejects.toMatchObject({ code: 'HEAD_UNREADABLE' });
  });
});

describe('training on shopper-photo views (real backbone)', () => {
  it('embeds views of training items pooled as photo queries, stores them with the index, reuses them, and trains on them', async () => {
    const catalog = await makeCatalog();
    const indexDir = tempDir('lookalike-views-');
    dirs.push(catalog, indexDir);
    await buildIndex({ catalogDir: catalog, indexDir });
    const options: Partial<TrainOptions> = { ...SMALL, epochs: 4, patience: 10, compare: false, install: false };

    const first = await trainHead({ indexDir, ...options, views: 12 });
    expect(first.views).toMatchObject({ count: 12, embedded: 12, reused: 0 });
    expect(first.head.meta.trained.views).toMatchObject({ count: 12, localise: DEFAULT_LOCALISATION });
    const store = SqliteStore.open(indexDir, { readonly: true });
    const stored = decodeViews(store.getFile(VIEWS_FILE));
    const items = new Map(store.listItems().map((i) => [i.id, i]));
    store.close();
    expect(stored?.meta.keys).toHaveLength(12);
    const viewed = stored!.meta.keys.map((k) => k.split('|'));
    for (const [id, , seed] of viewed) {
      expect(isHeldOut(id, 0.2)).toBe(false);
      expect(isHeldOut(id, QUERY_HOLDOUT)).toBe(false);
      expect(Number(seed)).toBeGreaterThanOrEqual(VIEW_SEED_BASE);
    }

    // The stored vectors are what a photo query of the same photo gives.
    const [id, kind, seed, , other0, , other1] = viewed[0];
    const photo = await perturbPhoto(items.get(id)!.image, kind as Perturbation, Number(seed), [items.get(other0)!.image, items.get(other1)!.image]);
    const lookalike = await Lookalike.open(indexDir, { readonly: true });
    try {
      const query = await lookalike.embedImage(photo);
      const dim = stored!.meta.dim;
      const cos = (a: Float32Array, b: Float32Array) => {
        let ab = 0, aa = 0, bb = 0;
        for (let j = 0; j < a.length; j++) { ab += a[j] * b[j]; aa += a[j] * a[j]; bb += b[j] * b[j]; }
        return ab / Math.sqrt(aa * bb);
      };
      expect(cos(stored!.max.subarray(0, dim), query.max)).toBeGreaterThan(0.9999);
      expect(cos(stored!.avg.subarray(0, dim), query.avg)).toBeGreaterThan(0.9999);
      expect(cos(stored!.colour.subarray(0, stored!.meta.colourDim), query.colour)).toBeGreaterThan(0.9999);
    } finally {
      await lookalike.close();
    }

    // A rerun reads them back instead of running the CNN; more views embed only the new ones.
    const again = await trainHead({ indexDir, ...options, views: 12 });
    expect(again.views).toMatchObject({ count: 12, embedded: 0, reused: 12 });
    expect(again.head.id).toBe(first.head.id);
    // The views change what is learnt: without them, the same seed gives another head.
    const none = await trainHead({ indexDir, ...options, views: 0 });
    expect(none.views).toBeUndefined();
    expect(none.head.meta.trained.views).toBeUndefined();
    expect(none.head.id).not.toBe(first.head.id);
    // Pulling views toward their own item is one more loss over the same samples.
    const pulled = await trainHead({ indexDir, ...options, views: 12, viewPull: 1 });
    expect(pulled.epochs[0].loss[VIEW_TASK]).toBeGreaterThan(0);
    expect(first.epochs[0].loss[VIEW_TASK]).toBeUndefined();
    expect(pulled.head.id).not.toBe(first.head.id);
    expect([...pulled.head.tensors.keys()]).toEqual([...first.head.tensors.keys()]);
    // And the head still reads back from its file.
    expect(decodeHead(encodeHead(first.head), 'views head').id).toBe(first.head.id);

    // The command line: views by default (read back here), --no-views for packshots only.
    const cli = runCli(['train', '--index', indexDir, '--views', '12', '--epochs', '2', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout).views).toMatchObject({ count: 12, embedded: 0, reused: 12 });
    const plain = runCli(['train', '--index', indexDir, '--no-views', '--epochs', '2', '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout).views).toBeUndefined();
  });
});
