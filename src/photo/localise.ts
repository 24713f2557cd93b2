/**
 * Where is the product in a photo? The backbone's last feature map already says: cells
 * whose channels fire strongly hold the object, cells of a background (white, a wall, a
 * table) fire weakly. Selective convolutional descriptor aggregation (SCDA, Wei et al.
 * 2017) keeps the cells whose summed activation is above the map's mean, keeps the
 * largest connected blob of them, and pools only over it: the query vector then describes
 * the product rather than the product plus its surroundings. No new model; `zoom` (photo/
 * vectors.ts) looks a second time at the blob's box.
 *
 * The same blobs, ranked, are the regions proposed to a shopper (`proposeRegions`).
 */
import type { BackboneOutput } from '../model/embedder.js';

/**
 * How a query photo's vectors are pooled: over the whole map, over the product's cells
 * (`scda`; `centred` prefers the middle), or `zoom`: centred, then a second pass over the
 * product's box (photo/vectors.ts).
 */
export type Localisation = 'none' | 'scda' | 'centred' | 'zoom';
export const LOCALISATIONS: readonly Localisation[] = ['none', 'scda', 'centred', 'zoom'];

/** A rectangle relative to the image: x, y, w, h in [0, 1]. */
export interface Region { x: number; y: number; w: number; h: number }

/** `inner`, relative to `outer` (itself relative to the photo), in the photo's coordinates. */
export function withinRegion(outer: Region | undefined, inner: Region): Region {
  if (!outer) return inner;
  return { x: outer.x + inner.x * outer.w, y: outer.y + inner.y * outer.h, w: inner.w * outer.w, h: inner.h * outer.h };
}

export interface ProposedRegion extends Region {
  /** Share of the map's above-mean activation inside the region's blob (0..1). */
  score: number;
}

/** One image's feature map: `channels` planes of gridH x gridW, starting at `offset`. */
export interface FeatureMapView {
  data: Float32Array;
  offset: number;
  channels: number;
  gridH: number;
  gridW: number;
}

/** Row `row`'s feature map in a batch the backbone ran with `featureMap: true` (else undefined). */
export function featureMapOf(out: BackboneOutput, row: number, dim: number): FeatureMapView | undefined {
  const fm = out.featureMap;
  return fm ? { data: fm.data, offset: row * dim * fm.gridH * fm.gridW, channels: dim, gridH: fm.gridH, gridW: fm.gridW } : undefined;
}

/** Summed activation of every cell (gridH x gridW). */
export function cellActivation(map: FeatureMapView): Float32Array {
  const cells = map.gridH * map.gridW;
  const act = new Float32Array(cells);
  for (let c = 0; c < map.channels; c++) {
    const base = map.offset + c * cells;
    for (let p = 0; p < cells; p++) act[p] += map.data[base + p];
  }
  return act;
}

/**
 * Connected blobs (8-neighbourhood) of the cells above the mean activation (plus `aboveSd`
 * standard deviations of it), biggest first.
 */
export function activeBlobs(act: Float32Array, gridH: number, gridW: number, aboveSd = 0): Array<{ cells: number[]; mass: number }> {
  let mean = 0;
  for (const v of act) mean += v;
  mean /= act.length;
  if (aboveSd) {
    let variance = 0;
    for (const v of act) variance += (v - mean) ** 2;
    mean += aboveSd * Math.sqrt(variance / act.length);
  }
  const label = new Int32Array(act.length).fill(-1);
  const blobs: Array<{ cells: number[]; mass: number }> = [];
  for (let start = 0; start < act.length; start++) {
    if (act[start] <= mean || label[start] >= 0) continue;
    const cells: number[] = [];
    let mass = 0;
    const stack = [start];
    label[start] = blobs.length;
    while (stack.length) {
      const p = stack.pop() as number;
      cells.push(p);
      mass += act[p] - mean;
      const y = Math.floor(p / gridW), x = p % gridW;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const ny = y + dy, nx = x + dx;
        if (ny < 0 || nx < 0 || ny >= gridH || nx >= gridW) continue;
        const q = ny * gridW + nx;
        if (label[q] < 0 && act[q] > mean) { label[q] = blobs.length; stack.push(q); }
      }
    }
    blobs.push({ cells, mass });
  }
  // Largest by area, as SCDA does; the summed activation breaks ties.
  return blobs.sort((a, b) => b.cells.length - a.cells.length || b.mass - a.mass);
}

/**
 * Shoppers frame what they want near the middle: weighting the activation by a broad
 * Gaussian around the centre (sigma = half the photo) sinks products cut by the photo's
 * edges below the mean, so they no longer join the wanted product's blob.
 */
function centreWeighted(act: Float32Array, gridH: number, gridW: number): Float32Array {
  const out = new Float32Array(act.length);
  for (let y = 0; y < gridH; y++) for (let x = 0; x < gridW; x++) {
    const dy = (y + 0.5) / gridH - 0.5, dx = (x + 0.5) / gridW - 0.5;
    out[y * gridW + x] = act[y * gridW + x] * Math.exp(-(dx * dx + dy * dy) / (2 * 0.5 * 0.5));
  }
  return out;
}

/**
 * The SCDA mask: 1 for the cells of the largest above-mean blob (all cells if there is
 * none); `centred` weighs the activation towards the middle first and leaves out the
 * photo's left and right edges.
 */
export function productMask(map: FeatureMapView, centred = false): Uint8Array {
  const act = centred ? centreWeighted(cellActivation(map), map.gridH, map.gridW) : cellActivation(map);
  const mask = new Uint8Array(act.length);
  const [largest] = activeBlobs(act, map.gridH, map.gridW);
  if (!largest) return mask.fill(1);
  for (const p of largest.cells) mask[p] = 1;
  if (centred) {
    // Products beside the wanted one stand left and right of it, cut by the photo's
    // edges: drop the outer column of cells on each side (one in 7), when enough is left.
    const border = Math.max(1, Math.round(map.gridW / 7));
    const kept = mask.map((m, p) => (m && p % map.gridW >= border && p % map.gridW < map.gridW - border ? 1 : 0));
    if (kept.reduce((a, b) => a + b, 0) >= 4) return kept;
  }
  return mask;
}

/** Max and average pooling over the masked cells only. */
export function maskedPooling(map: FeatureMapView, mask: Uint8Array): { max: Float32Array; avg: Float32Array } {
  const cells = map.gridH * map.gridW;
  const max = new Float32Array(map.channels);
  const avg = new Float32Array(map.channels);
  let count = 0;
  for (let p = 0; p < cells; p++) if (mask[p]) count++;
  for (let c = 0; c < map.channels; c++) {
    const base = map.offset + c * cells;
    let m = -Infinity, s = 0;
    for (let p = 0; p < cells; p++) {
      if (!mask[p]) continue;
      const v = map.data[base + p];
      if (v > m) m = v;
      s += v;
    }
    max[c] = count ? m : 0;
    avg[c] = count ? s / count : 0;
  }
  return { max, avg };
}

/** The bounding box of a set of cells, relative to the image. */
function cellsBox(cells: number[], gridH: number, gridW: number): Region {
  let x0 = gridW, y0 = gridH, x1 = 0, y1 = 0;
  for (const p of cells) {
    const y = Math.floor(p / gridW), x = p % gridW;
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + 1); y1 = Math.max(y1, y + 1);
  }
  return { x: x0 / gridW, y: y0 / gridH, w: (x1 - x0) / gridW, h: (y1 - y0) / gridH };
}

/** Smallest side of a zoom box, relative to the photo: a few cells of context stay. */
const MIN_BOX_SIDE = 0.2;

/**
 * The box of a mask's cells, grown by `margin` cells on every side, at least MIN_BOX_SIDE
 * wide and high, inside the photo: where a second look at the product goes.
 */
export function maskBox(mask: Uint8Array, gridW: number, gridH: number, margin: number): Region {
  const cells: number[] = [];
  mask.forEach((m, p) => { if (m) cells.push(p); });
  if (!cells.length) return { x: 0, y: 0, w: 1, h: 1 };
  const b = cellsBox(cells, gridH, gridW);
  const w = Math.min(1, Math.max(MIN_BOX_SIDE, b.w + (2 * margin) / gridW));
  const h = Math.min(1, Math.max(MIN_BOX_SIDE, b.h + (2 * margin) / gridH));
  const cx = b.x + b.w / 2, cy = b.y + b.h / 2;
  return { x: Math.min(Math.max(0, cx - w / 2), 1 - w), y: Math.min(Math.max(0, cy - h / 2), 1 - h), w, h };
}

/**
 * Up to `limit` regions where products are likely to be: the above-mean blobs (`aboveSd`:
 * above the mean plus that many standard deviations), biggest first, as boxes. Blobs of a
 * single cell are dropped unless nothing else is found.
 */
export function proposeRegions(map: FeatureMapView, limit = 3, aboveSd = 0): ProposedRegion[] {
  const act = cellActivation(map);
  const blobs = activeBlobs(act, map.gridH, map.gridW, aboveSd);
  const total = blobs.reduce((s, b) => s + b.mass, 0) || 1;
  const kept = blobs.filter((b, i) => b.cells.length > 1 || i === 0).slice(0, limit);
  return kept.map((b) => ({ ...cellsBox(b.cells, map.gridH, map.gridW), score: b.mass / total }));
}
