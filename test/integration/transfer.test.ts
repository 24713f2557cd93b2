/**
 * `lookalike transfer`: the index's held-out items become small greyscale thumbnails, a
 * catalog of another kind, indexed with the same model; the index's head is attached as it
 * is and compared with plain features. Real CNN, real head training (small settings).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { trainHead } from '../../src/train/train.js';
import { evaluateTransfer } from '../../src/lab/eval/transfer.js';
import { isHeldOut } from '../../src/catalog/split.js';
import { makeCatalog, tempDir, type FixtureItem, type Shape } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

const SHAPES: Array<[Shape, string]> = [['shirt', 'Shirts'], ['trousers', 'Trousers'], ['watch', 'Watches'], ['bag', 'Handbags']];
const COLOURS = ['#d22', '#23c', '#2a3', '#111', '#e80', '#a3c', '#0aa', '#777', '#f6c', '#630', '#9c3', '#36f'];

let indexDir: string;

beforeAll(async () => {
  const items: FixtureItem[] = [];
  let id = 5000;
  for (const [shape, articleType] of SHAPES) {
    for (const [c, colour] of COLOURS.entries()) {
      items.push({ id: String(id++), shape, colour, metadata: { articleType, baseColour: `colour${c % 4}`, gender: c % 2 ? 'Men' : 'Women' } });
    }
  }
  const catalog = await makeCatalog(items);
  indexDir = path.join(tempDir(), 'index');
  await buildIndex({ catalogDir: catalog, indexDir, batchSize: 16 });
  await trainHead({ indexDir, hidden: 64, dim: 16, colourDim: 8, reduced: 32, epochs: 5, patience: 5, views: 0, compare: false });
}, 300_000);

describe('a head on a catalog of another kind (lookalike transfer)', () => {
  it('indexes greyscale thumbnails of the held-out items with the same model and compares plain features with every head mode', async () => {
    const work = tempDir('lookalike-transfer-');
    const lookalike = await Lookalike.open(indexDir);
    try {
      const heldOut = lookalike.indexView().items.filter((i) => isHeldOut(i.id, 0.2)).length;
      const result = await evaluateTransfer(lookalike, { k: 1, size: 28, attributes: ['articleType'], workDir: work });
      expect(result.items).toBe(heldOut);
      expect(result.rows.map((r) => r.space)).toEqual(['plain', 'head style', 'head balanced (default)', 'head colour', 'head balanced (default), as trained']);
      for (const r of result.rows) {
        expect(r.attribute).toBe('articleType');
        expect(r.knnAccuracy).toBeGreaterThanOrEqual(0);
        expect(r.knnAccuracy).toBeLessThanOrEqual(1);
      }
      const thumbs = readdirSync(path.join(work, 'catalog', 'images'));
      expect(thumbs).toHaveLength(heldOut);
      const { data, info } = await sharp(path.join(work, 'catalog', 'images', thumbs[0])).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([28, 28]);
      // Greyscale: one channel, or three equal ones.
      if (info.channels >= 3) for (let p = 0; p < data.length; p += info.channels) expect(data[p]).toBe(data[p + 1]);
      // The thumbnails' index holds the head re-centred on them, not the one trained.
      const other = await Lookalike.open(path.join(work, 'index'), { readonly: true });
      try {
        expect(other.head!.head.meta.recentred?.items).toBe(heldOut);
        expect(other.head!.head.id).not.toBe(lookalike.head!.head.id);
      } finally {
        await other.close();
      }

      // The control keeps the colour: some pixel of some thumbnail is not grey.
      const control = tempDir('lookalike-transfer-colour-');
      const coloured = await evaluateTransfer(lookalike, { k: 1, size: 32, colour: true, attributes: ['articleType'], workDir: control });
      expect(coloured.colour).toBe(true);
      let grey = true;
      for (const file of readdirSync(path.join(control, 'catalog', 'images'))) {
        const px = await sharp(path.join(control, 'catalog', 'images', file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        expect([px.info.width, px.info.height]).toEqual([32, 32]);
        for (let p = 0; p < px.data.length; p += 3) if (px.data[p] !== px.data[p + 1] || px.data[p] !== px.data[p + 2]) grey = false;
      }
      expect(grey).toBe(false);
    } finally {
      await lookalike.close();
    }
  }, 180_000);

  it('runs from the command line, and says what to do on an index without a head', async () => {
    const r = runCli(['transfer', '--index', indexDir, '--k', '1', '--attr', 'articleType', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).rows).toHaveLength(5);
    const plainIndex = path.join(tempDir(), 'index');
    await buildIndex({ catalogDir: await makeCatalog(), indexDir: plainIndex });
    const none = runCli(['transfer', '--index', plainIndex]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/lookalike train/);
  }, 180_000);
});
