/**
 * A shopper's photo turned into query vectors. Catalog items keep whole-photo pooling (what
 * the index stores); a photo's product is found on the backbone's last feature map
 * (model/localise.ts) and, by default, looked at twice:
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
import { maskBox, maskedPooling, productMask, proposeRegions, type FeatureMapView, type Localisation, type ProposedRegion, type Region } from './localise.js';
import { colourHistogram, whiteBorderShare } from '../image/colour.js';
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

/** A photo's raw vectors, and where in it products seem to be. */
export interface PhotoVectors extends RawVectors {
  /** Up to 3 regions proposed from the feature map, relative to the (cropped) photo. */
  regions: ProposedRegion[];
  /** zoom: the part of the (cropped) photo the second pass looked at, when it ran. */
  zoom?: Region;
}

function mapView(out: BackboneOutput, row: number, dim: number): FeatureMapView | undefined {
  const fm = out.featureMap;
  return fm ? { data: fm.data, offset: row * dim * fm.gridH * fm.gridW, channels: dim, gridH: fm.gridH, gridW: fm.gridW } : undefined;
}

/**
 * Row `row` of a batch run with the feature map, pooled in one pass: over the whole photo
 * (`none`), or over the product's cells (`scda`, `centred`; `zoom`'s first pass is
 * `centred`), with the colour histogram counting only pixels under those cells.
 */
export function photoVectors(out: BackboneOutput, row: number, prepared: PreparedImage, width: number, height: number, dim: number, localise: Localisation): PhotoVectors {
  const view = mapView(out, row, dim);
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

/** `inner`, relative to `outer` (itself relative to the photo), in the photo's coordinates. */
export function withinRegion(outer: Region | undefined, inner: Region): Region {
  if (!outer) return inner;
  return { x: outer.x + inner.x * outer.w, y: outer.y + inner.y * outer.h, w: inner.w * outer.w, h: inner.h * outer.h };
}

/** a / |a| + b / |b|, in a new array. */
function added(a: Float32Array, b: Float32Array): Float32Array {
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
    const view = mapView(out, i, dim);
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
    const second = pooled(out2, j, mapView(out2, j, dim), crops[j], width, height, dim, 'centred');
    const a = zoom[i];
    zoom[i] = { ...a, max: added(a.max, second.max), avg: added(a.avg, second.avg), colour: second.colour, zoom: boxes[i] };
  });
  return result;
}

/**
 * Shop the look on a busy background (no plain colour to find products apart in pixels,
 * image/objects.ts): the photo is looked at with its own aspect (the usual square input
 * squeezes a scene of 3 products into 7 columns of cells) and the blobs kept are those
 * above the mean activation plus this many standard deviations, so that products side by
 * side no longer join into one. Measured on 30 busy scenes of 2-4 products (docs/asking.md):
 * the very product in the top 10 of some look 0.163 (square, mean), 0.395 (own aspect,
 * mean), 0.663 (own aspect, + 0.5 sd), 0.651 (+ 1 sd).
 */
export const SCENE_REGION_SD = 0.5;
/** The widest a scene is looked at, relative to its height (a panorama is squeezed to it). */
const SCENE_MAX_ASPECT = 4;
/** At most this many products per photo. */
export const MAX_LOOKS = 4;

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
  const view = mapView(out, 0, embedder.dimension);
  return view ? proposeRegions(view, MAX_LOOKS, SCENE_REGION_SD) : [];
}

/**
 * A photo's top result ahead of the second by at least this much cosine is taken for the
 * product itself (chosen with `lookalike robustness`: at 0.01 and 0.02 wrong top results
 * were expanded too and recall of the very product fell; docs/shopper-photos.md).
 */
export const EXPANSION_GAP = 0.03;

/**
 * The query for a photo's results when its top result stands out: the photo's vector plus
 * that product's catalog vector (both L2-normalised), normalised. A shopper's photo is
 * noisier than a packshot; once the product is found, "more like it" is best searched from
 * the product's own vector as well (average query expansion, gated by confidence). The top
 * result stays first: no item is nearer the sum than the top one. Undefined: search with the
 * photo alone.
 */
export function expandedQuery(query: Float32Array, scores: readonly number[], top: Float32Array | undefined): Float32Array | undefined {
  if (!top || scores.length < 2 || scores[0] - scores[1] < EXPANSION_GAP) return undefined;
  const sum = added(query, top);
  return normaliseRows(sum, sum.length);
}
