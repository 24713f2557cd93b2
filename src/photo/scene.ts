/**
 * Shop the look: where the products of an outfit photo lie, each to be searched on its own.
 *
 * On a plain background (a flat lay, a shop's "shop the look" photo, products on a table or
 * a wall), in pixels (`foregroundRegions`): the pixels that differ from the background's
 * colour, grouped into connected blobs on a coarse grid, one box per blob. The backbone's
 * feature map (photo/localise.ts) sees such a photo at 7 x 7 cells, where products side by
 * side join one blob (docs/asking.md: 1.05 regions per scene of 2-4 products); pixels keep
 * them apart. A busy background has no one colour: then nothing is proposed in pixels, and
 * the feature map's strong blobs at the photo's own aspect stand (`sceneRegions`).
 */
import type { Embedder } from '../model/embedder.js';
import type { EmbeddingSettings } from '../model/registry.js';
import { prepareImage } from '../image/prepare.js';
import { prepareOptionsFor } from '../image/options.js';
import { featureMapOf, proposeRegions, type ProposedRegion, type Region } from './localise.js';
import type { PhotoInput } from './vectors.js';

/** At most this many products per photo. */
export const MAX_LOOKS = 4;

/** Share of the border pixels within BACKGROUND_DISTANCE of the border's median colour for a plain background. */
const PLAIN_BORDER = 0.85;
/** Largest channel difference from the background colour still counted as background. */
const BACKGROUND_DISTANCE = 28;
/** Pixels per cell side of the grid blobs are found on. */
const CELL = 4;
/** A cell holds the product when this share of its pixels differ from the background. */
const CELL_SHARE = 0.2;
/** Blobs smaller than this share of the photo (specks, shadows, logos) are left out. */
const MIN_AREA = 0.015;
/** Background kept around each box, relative to the photo's side: products framed as on a packshot. */
const MARGIN = 0.03;

/** Median of each channel over the photo's border (2 pixels deep). */
function borderColour(rgb: Uint8Array, width: number, height: number): { colour: [number, number, number]; plain: boolean } {
  const samples: number[][] = [[], [], []];
  const at: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y >= 2 && y < height - 2 && x >= 2 && x < width - 2) continue;
      const o = (y * width + x) * 3;
      at.push(o);
      for (let c = 0; c < 3; c++) samples[c].push(rgb[o + c]);
    }
  }
  const colour = samples.map((s) => s.sort((a, b) => a - b)[s.length >> 1]) as [number, number, number];
  const near = at.filter((o) => isBackground(rgb, o, colour)).length;
  return { colour, plain: near / Math.max(1, at.length) >= PLAIN_BORDER };
}

function isBackground(rgb: Uint8Array, o: number, colour: readonly number[]): boolean {
  return Math.abs(rgb[o] - colour[0]) <= BACKGROUND_DISTANCE && Math.abs(rgb[o + 1] - colour[1]) <= BACKGROUND_DISTANCE && Math.abs(rgb[o + 2] - colour[2]) <= BACKGROUND_DISTANCE;
}

/**
 * Boxes (relative to the photo) of the products standing out from a plain background,
 * biggest first, at most `limit`; empty when the background is not plain.
 */
export function foregroundRegions(rgb: Uint8Array, width: number, height: number, limit = MAX_LOOKS): Region[] {
  const { colour, plain } = borderColour(rgb, width, height);
  if (!plain) return [];
  const gw = Math.ceil(width / CELL), gh = Math.ceil(height / CELL);
  const on = new Uint8Array(gw * gh);
  for (let cy = 0; cy < gh; cy++) {
    for (let cx = 0; cx < gw; cx++) {
      let n = 0, fg = 0;
      for (let y = cy * CELL; y < Math.min(height, (cy + 1) * CELL); y++) {
        for (let x = cx * CELL; x < Math.min(width, (cx + 1) * CELL); x++) {
          n++;
          if (!isBackground(rgb, (y * width + x) * 3, colour)) fg++;
        }
      }
      on[cy * gw + cx] = fg >= CELL_SHARE * n ? 1 : 0;
    }
  }
  // Connected blobs (8-neighbourhood): a product's light parts leave holes, not gaps.
  const label = new Int32Array(on.length).fill(-1);
  const boxes: Array<Region & { cells: number }> = [];
  for (let start = 0; start < on.length; start++) {
    if (!on[start] || label[start] >= 0) continue;
    let x0 = gw, y0 = gh, x1 = -1, y1 = -1, cells = 0;
    const stack = [start];
    label[start] = boxes.length;
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % gw, y = Math.floor(p / gw);
      cells++;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx, ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= gw || ny >= gh) continue;
        const q = ny * gw + nx;
        if (on[q] && label[q] < 0) { label[q] = boxes.length; stack.push(q); }
      }
    }
    boxes.push({ x: x0 / gw, y: y0 / gh, w: (x1 - x0 + 1) / gw, h: (y1 - y0 + 1) / gh, cells });
  }
  return boxes.filter((b) => b.w * b.h >= MIN_AREA)
    .sort((a, b) => b.cells - a.cells).slice(0, limit)
    .map((b) => {
      const x = Math.max(0, b.x - MARGIN), y = Math.max(0, b.y - MARGIN);
      return { x, y, w: Math.min(1, b.x + b.w + MARGIN) - x, h: Math.min(1, b.y + b.h + MARGIN) - y };
    });
}

/**
 * Shop the look on a busy background (no plain colour to find products apart in pixels,
 * foregroundRegions): the photo is looked at with its own aspect (the usual square input
 * squeezes a scene of 3 products into 7 columns of cells) and the blobs kept are those
 * above the mean activation plus this many standard deviations, so that products side by
 * side no longer join into one. Measured on 30 busy scenes of 2-4 products (docs/asking.md):
 * the very product in the top 10 of some look 0.163 (square, mean), 0.395 (own aspect,
 * mean), 0.663 (own aspect, + 0.5 sd), 0.651 (+ 1 sd).
 */
export const SCENE_REGION_SD = 0.5;
/** The widest a scene is looked at, relative to its height (a panorama is squeezed to it). */
const SCENE_MAX_ASPECT = 4;

/**
 * Where the products of a scene photo (relative `aspect`, width / height of the part
 * looked at) seem to be: one backbone pass at the photo's own aspect, its feature map's
 * strong blobs as boxes relative to the (cropped) photo.
 */
export async function sceneRegions(embedder: Embedder, settings: EmbeddingSettings, photo: Omit<PhotoInput, 'prepared'>, aspect: number): Promise<ProposedRegion[]> {
  const height = settings.height;
  const width = Math.max(32, Math.min(height * SCENE_MAX_ASPECT, Math.round((height * aspect) / 32) * 32));
  const prepared = await prepareImage(photo.input, { ...prepareOptionsFor(settings), width, height, label: photo.label, maxPixels: photo.maxPixels, crop: photo.crop });
  const out = await embedder.run(prepared.tensor, 1, height, width, { featureMap: true });
  const view = featureMapOf(out, 0, embedder.dimension);
  return view ? proposeRegions(view, MAX_LOOKS, SCENE_REGION_SD) : [];
}
