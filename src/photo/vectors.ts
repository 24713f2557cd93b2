/**
 * A shopper's photo turned into query vectors. Catalog items keep whole-photo pooling (what
 * the index stores); a photo's product is found on the backbone's last feature map
 * (photo/localise.ts) and, by default, looked at twice:
 *
 *   pass 1  the whole photo; the product's cells (centred SCDA) are pooled, and their
 *           bounding box, with half a cell of margin, is where the product is (a photo
 *           with the catalog's white all round it stops here: it is a packshot);
 *   pass 2  that box cut from the photo and run through the backbone again at full input
 *           size, its product cells pooled (the product now covers most of the cells, as
 *           on a packshot);
 *   fused   the two L2-normalised vectors added (each pooling), the colour histogram of the
 *           second pass (less background under its cells).
 *
 * Pass 2 alone wins the small, off-centre products and the ones between other products but
 * loses some busy backgrounds, where pass 1 holds up; the sum keeps both (docs/shopper-photos.md).
 * Lookalike.embedImage, `lookalike robustness` and the training views of
 * `lookalike train` all embed photos here, so what is measured and trained on is what
 * searches do.
 */
import type { BackboneOutput, Embedder } from '../model/embedder.js';
import { featureMapOf, maskBox, maskedPooling, productMask, proposeRegions, withinRegion, type FeatureMapView, type Localisation, type ProposedRegion, type Region } from './localise.js';
import { colourHistogram, isWhiteBackground } from '../image/colour.js';
import { prepareImage, type PreparedImage } from '../image/prepare.js';
import { prepareOptionsFor } from '../image/options.js';
import type { EmbeddingSettings } from '../model/registry.js';
import type { RawVectors } from '../search/space.js';
import { normaliseRows } from '../search/kernel.js';

/** The query-side default, chosen by `lookalike robustness` (docs/shopper-photos.md). */
export const DEFAULT_LOCALISATION: Localisation = 'zoom';

/** Margin around the product's cells for the second pass, in cells of the feature map. */
export const ZOOM_MARGIN_CELLS = 0.5;
/** A box covering more of the photo than this is the whole photo already: no second pass. */
export const ZOOM_MAX_AREA = 0.85;
/**
 * A photo whose border is at least this white is a packshot like the catalog's: one pass
 * sees it as the index does (on the dev catalog 56% of packshots, every blurred packshot
 * and 77% of tilted ones; no photo with other products beside it reaches 0.97). A second
 * look there only costs time: blurred packshots lost recall with it (0.976 -> 0.967).
 */
export const PACKSHOT_BORDER = 0.97;

/**
 * Share of a photo's border (the outer 1/28 of each side) that is near-white background: 1
 * for a packshot on white, as the catalog's; a shopper's photo has a wall, a table or other
 * products there.
 */
export function whiteBorderShare(rgb: Uint8Array, width: number, height: number): number {
  const bx = Math.max(1, Math.round(width / 28)), by = Math.max(1, Math.round(height / 28));
  let n = 0, white = 0;
  for (let y = 0; y < height; y++) {
    const edgeRow = y < by || y >= height - by;
    for (let x = 0; x < width; x++) {
      if (!edgeRow && x >= bx && x < width - bx) continue;
      const o = (y * width + x) * 3;
      n++;
      if (isWhiteBackground(rgb[o], rgb[o + 1], rgb[o + 2])) white++;
    }
  }
  return n ? white / n : 0;
}

/** A photo's raw vectors, and where in it products seem to be. */
export interface PhotoVectors extends RawVectors {
  /** Up to 3 regions proposed from the feature map, relative to the (cropped) photo. */
  regions: ProposedRegion[];
  /** zoom: the part of the (cropped) photo the second pass looked at, when it ran. */
  zoom?: Region;
}

/**
 * Row `row` of a batch run with the feature map, pooled in one pass: over the whole photo
 * (`none`), or over the product's cells (`scda`, `centred`; `zoom`'s first pass is
 * `centred`), with the colour histogram counting only pixels under those cells.
 */
export function photoVectors(out: BackboneOutput, row: number, prepared: PreparedImage, width: number, height: number, dim: number, localise: Localisation): PhotoVectors {
  const view = featureMapOf(out, row, dim);
  return { ...pooled(out, row, view, prepared, width, height, dim, localise), regions: view ? proposeRegions(view) : [] };
}

function pooled(out: BackboneOutput, row: number, view: FeatureMapView | undefined, prepared: PreparedImage, width: number, height: number, dim: number, localise: Localisation): RawVectors {
  if (localise === 'none' || !view) {
    return { n: 1, max: out.max.slice(row * dim, (row + 1) * dim), avg: out.avg.slice(row * dim, (row + 1) * dim), colour: prepared.colour, dim, colourDim: prepared.colour.length };
  }
  const mask = productMask(view, localise !== 'scda');
  const { max, avg } = maskedPooling(view, mask);
  const colour = colourHistogram(prepared.rgb, width, height, { mask, gridW: view.gridW, gridH: view.gridH });
  return { n: 1, max, avg, colour, dim, colourDim: colour.length };
}

/** One photo of a batch: its bytes or path (read again for the second pass), prepared for pass 1. */
export interface PhotoInput {
  input: string | Buffer;
  prepared: PreparedImage;
  /** The shopper's box, relative to the photo, that `prepared` was cut to. */
  crop?: Region;
  label?: string;
  maxPixels?: number;
}

/** a / |a| + b / |b|, in a new array: how two looks (and a query expansion) are fused. */
export function unitSum(a: Float32Array, b: Float32Array): Float32Array {
  const na = normaliseRows(Float32Array.from(a), a.length), nb = normaliseRows(Float32Array.from(b), b.length);
  for (let i = 0; i < na.length; i++) na[i] += nb[i];
  return na;
}

/**
 * Query vectors of a batch of photos, localised as `localise` says. One backbone run for
 * the batch, and for `zoom` one more over the boxes of the photos whose product does not
 * fill them already.
 */
export async function photoBatchVectors(embedder: Embedder, settings: EmbeddingSettings, photos: readonly PhotoInput[], localise: Localisation): Promise<PhotoVectors[]> {
  return (await photoBatchVectorsBy(embedder, settings, photos, [localise])).get(localise)!;
}

/** As photoBatchVectors, for several localisations from one first pass (robustness compares them). */
export async function photoBatchVectorsBy(embedder: Embedder, settings: EmbeddingSettings, photos: readonly PhotoInput[], localisations: readonly Localisation[]): Promise<Map<Localisation, PhotoVectors[]>> {
  const result = new Map<Localisation, PhotoVectors[]>();
  if (!photos.length) {
    for (const l of localisations) result.set(l, []);
    return result;
  }
  const { width, height } = settings;
  const dim = embedder.dimension;
  const stack = (images: PreparedImage[]) => {
    const t = new Float32Array(images.length * images[0].tensor.length);
    images.forEach((p, i) => t.set(p.tensor, i * p.tensor.length));
    return t;
  };
  const out = await embedder.run(stack(photos.map((p) => p.prepared)), photos.length, height, width, { featureMap: true });
  // zoom's first pass is the centred pooling: computed once when both are asked for.
  const onePass = (l: Localisation): Localisation => (l === 'zoom' ? 'centred' : l);
  const pooledBy = new Map<Localisation, PhotoVectors[]>();
  for (const l of localisations) {
    const key = onePass(l);
    if (!pooledBy.has(key)) pooledBy.set(key, photos.map((p, i) => photoVectors(out, i, p.prepared, width, height, dim, key)));
    result.set(l, [...pooledBy.get(key)!]);
  }
  const zoom = result.get('zoom');
  if (!zoom) return result;

  const boxes = photos.map((p, i) => {
    const view = featureMapOf(out, i, dim);
    if (!view || whiteBorderShare(p.prepared.rgb, width, height) >= PACKSHOT_BORDER) return undefined;
    const box = maskBox(productMask(view, true), view.gridW, view.gridH, ZOOM_MARGIN_CELLS);
    return box.w * box.h <= ZOOM_MAX_AREA ? box : undefined;
  });
  const zoomed = photos.map((_, i) => i).filter((i) => boxes[i]);
  if (!zoomed.length) return result;
  const prep = prepareOptionsFor(settings);
  const crops = await Promise.all(zoomed.map((i) => prepareImage(photos[i].input, {
    ...prep, label: photos[i].label, maxPixels: photos[i].maxPixels, crop: withinRegion(photos[i].crop, boxes[i]!),
  })));
  const out2 = await embedder.run(stack(crops), crops.length, height, width, { featureMap: true });
  zoomed.forEach((i, j) => {
    const second = pooled(out2, j, featureMapOf(out2, j, dim), crops[j], width, height, dim, 'centred');
    const a = zoom[i];
    zoom[i] = { ...a, max: unitSum(a.max, second.max), avg: unitSum(a.avg, second.avg), colour: second.colour, zoom: boxes[i] };
  });
  return result;
}
