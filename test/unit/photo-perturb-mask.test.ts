/**
 * The parts of photo robustness that need no model: shopper photos drawn reproducibly
 * (photo/synthetic) and the product mask of an activation map. With the model:
 * test/integration/robustness.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import sharp from 'sharp';
import { PERTURBATIONS, perturbPhoto } from '../../src/photo/synthetic.js';
import { activeBlobs, maskBox, productMask } from '../../src/photo/localise.js';
import { defaultItems, makeCatalog } from '../helpers/fixtures.js';

let catalog: string;

beforeAll(async () => {
  catalog = await makeCatalog(defaultItems());
});

describe('shopper photos (photo/synthetic)', () => {
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
  it('grows the mask\'s box by a margin, keeps it at least a fifth of the photo, and inside it', () => {
    const mask = new Uint8Array(49);
    mask[3 * 7 + 3] = 1; // one cell in the middle of a 7x7 map
    const box = maskBox(mask, 7, 7, 0.5);
    expect(box.w).toBeCloseTo(2 / 7, 6);
    expect(box.x + box.w / 2).toBeCloseTo(0.5, 6);
    const corner = new Uint8Array(49);
    corner[0] = 1;
    expect(maskBox(corner, 7, 7, 0)).toEqual({ x: 0, y: 0, w: 0.2, h: 0.2 });
    expect(maskBox(new Uint8Array(49).fill(1), 7, 7, 0.5)).toEqual({ x: 0, y: 0, w: 1, h: 1 });
  });

  it('keeps the largest blob of above-mean cells as the product mask', () => {
    // 4x4 map, one channel: a 2x2 blob top-left and a single hot cell bottom-right.
    const act = new Float32Array([5, 5, 0, 0, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    expect(activeBlobs(act, 4, 4).map((b) => b.cells.length)).toEqual([4, 1]);
    const mask = productMask({ data: act, offset: 0, channels: 1, gridH: 4, gridW: 4 });
    expect(Array.from(mask)).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});
