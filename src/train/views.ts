/**
 * Shopper-photo views of training items, for `lookalike train` (issue #9): the head learnt
 * from packshots on white only, so on a shopper's photo its vector drifts away. Here a
 * sample of the training items is photographed anew (photo/synthetic.ts, every kind), each
 * photo run through the backbone once and pooled exactly as a photo query is (the query
 * path's localisation, lookalike.ts photoVectors), and the raw vectors are stored with the
 * index, so that reruns of `train` read them instead of running the CNN again. Training
 * then sees each view as one more sample with its item's labels.
 *
 * Never evaluated: views come only from items outside both the training hold-out and
 * robustness's query share (QUERY_HOLDOUT), and their seeds live in a range of their own
 * (VIEW_SEED_BASE and up) that robustness's seeds (querySeed) do not reach.
 *
 * File: "LKVIEWS1\n", a little-endian uint32 byte length, the JSON header (ViewsMeta),
 * zero padding to a multiple of 4, then float32 max (n x dim), avg (n x dim) and colour
 * (n x colourDim) in the order of the header's entries.
 */
import { INDEX_FILES } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { openStore } from '../store/open.js';
import type { ImageSource, IndexManifest } from '../store/types.js';
import { Embedder } from '../model/embedder.js';
import { imageFingerprint, storedSettings } from '../model/registry.js';
import type { Localisation } from '../photo/localise.js';
import { prepareImage, type PreparedImage } from '../image/prepare.js';
import { prepareOptionsFor } from '../image/options.js';
import type { RawVectors } from '../search/space.js';
import { Random, sampleWithoutReplacement } from '../math/random.js';
import { isHeldOut } from '../eval/split.js';
import { PERTURBATIONS, perturbPhoto, type Perturbation } from '../photo/synthetic.js';
import { QUERY_HOLDOUT } from '../eval/robustness.js';
import { DEFAULT_LOCALISATION, photoBatchVectors } from '../photo/vectors.js';

export const VIEWS_FILE = INDEX_FILES.views;

/** Views embedded by default: measured with `lookalike robustness` (docs/shopper-photos.md). */
export const DEFAULT_VIEWS = 3000;

/**
 * Views' perturbPhoto seeds start here. Robustness uses querySeed(seed, i) = seed x
 * 1,000,003 + i, below 0xF0000000 for every --seed up to 4,000; views stay in
 * [0xF0000000, 2^32), the range of seeds Random reads.
 */
export const VIEW_SEED_BASE = 0xf000_0000;
const VIEW_SEED_SPAN = 0x0fff_ffff;

export function viewSeed(seed: number, i: number): number {
  return VIEW_SEED_BASE + (((seed >>> 0) * 100_003 + i) % VIEW_SEED_SPAN);
}

/** One planned view: which item, how it is photographed, and who stands beside it (clutter). */
export interface ViewPlan {
  row: number;
  kind: Perturbation;
  seed: number;
  others: [number, number];
}

/**
 * Up to `count` views (at most one per kind and item) spread evenly over the kinds, of rows `candidates` allows (training
 * rows), minus any item of the training hold-out (`holdout`) or robustness's query share.
 * Neighbours in clutter photos come from the same rows. Seeded: the same plan every run.
 */
export function planViews(ids: string[], candidates: ArrayLike<number>, count: number, seed: number, holdout: number): ViewPlan[] {
  const eligible = Array.from(candidates).filter((r) => !isHeldOut(ids[r], holdout) && !isHeldOut(ids[r], QUERY_HOLDOUT));
  if (!eligible.length || count <= 0) return [];
  // At most one view of each kind per item: beyond that a small catalog only repeats itself.
  count = Math.min(count, PERTURBATIONS.length * eligible.length);
  const rng = new Random(viewSeed(seed, VIEW_SEED_SPAN - 1));
  const m = Math.min(count, eligible.length);
  const picked = Array.from(sampleWithoutReplacement(rng, eligible.length, m), (i) => eligible[i]);
  const other = (row: number) => {
    if (eligible.length < 2) return row;
    let o = row;
    while (o === row) o = eligible[rng.int(eligible.length)];
    return o;
  };
  return Array.from({ length: count }, (_, i) => {
    const row = picked[i % m];
    // An item drawn twice (small catalogs) gets another kind the second time.
    const kind = PERTURBATIONS[(i + Math.floor(i / m)) % PERTURBATIONS.length];
    return { row, kind, seed: viewSeed(seed, i), others: [other(row), other(row)] };
  });
}

export interface TrainingViews {
  /** Catalog row of each view's item (views that could not be drawn are left out). */
  rows: Int32Array;
  kinds: Perturbation[];
  seeds: number[];
  raw: RawVectors;
  /** Embedded by this run / read from the stored file. */
  embedded: number;
  reused: number;
  seconds: number;
}

export interface ViewsMeta {
  format: 'lookalike-views';
  /** 2: pooled by the two-pass zoom with its packshot gate (photo/vectors.ts); older views are embedded again. */
  version: 2;
  /** Backbone weights, image preparation and precision: views of another model are useless. */
  model: string;
  localise: Localisation;
  dim: number;
  colourDim: number;
  /** One per stored view: what photo it is (item, kind, seed, neighbours, image bytes). */
  keys: string[];
}

const MAGIC = Buffer.from('LKVIEWS1\n', 'latin1');

function modelKey(manifest: IndexManifest): string {
  return `${manifest.weightsId} ${imageFingerprint(manifest.settings)} ${manifest.settings.precision ?? 'fp32'}`;
}

export interface Stored { meta: ViewsMeta; max: Float32Array; avg: Float32Array; colour: Float32Array }

/** The stored views of an index's file (undefined when absent or unreadable: they are re-embedded). */
export function decodeViews(buf: Buffer | undefined): Stored | undefined {
  if (!buf || buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  try {
    const len = buf.readUInt32LE(MAGIC.length);
    const headerEnd = MAGIC.length + 4 + len;
    const meta = JSON.parse(buf.subarray(MAGIC.length + 4, headerEnd).toString('utf8')) as ViewsMeta;
    if (meta.format !== 'lookalike-views' || meta.version !== 2) return undefined;
    const n = meta.keys.length;
    const start = headerEnd + ((4 - (headerEnd % 4)) % 4);
    const floats = n * (2 * meta.dim + meta.colourDim);
    if (buf.length < start + floats * 4) return undefined;
    // Copy: the buffer's offset need not be float-aligned.
    const all = new Float32Array(floats);
    Buffer.from(all.buffer).set(buf.subarray(start, start + floats * 4));
    return { meta, max: all.subarray(0, n * meta.dim), avg: all.subarray(n * meta.dim, 2 * n * meta.dim), colour: all.subarray(2 * n * meta.dim) };
  } catch {
    return undefined;
  }
}

function encodeViews(meta: ViewsMeta, max: Float32Array, avg: Float32Array, colour: Float32Array): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const headerEnd = MAGIC.length + 4 + json.length;
  const pad = (4 - (headerEnd % 4)) % 4;
  const out = Buffer.alloc(headerEnd + pad + (max.byteLength + avg.byteLength + colour.byteLength));
  MAGIC.copy(out, 0);
  out.writeUInt32LE(json.length, MAGIC.length);
  json.copy(out, MAGIC.length + 4);
  let off = headerEnd + pad;
  for (const t of [max, avg, colour]) {
    Buffer.from(t.buffer, t.byteOffset, t.byteLength).copy(out, off);
    off += t.byteLength;
  }
  return out;
}

export interface EmbedViewsOptions {
  indexDir: string;
  manifest: IndexManifest;
  ids: string[];
  images: string[];
  plan: ViewPlan[];
  localise?: Localisation;
  log?: (message: string) => void;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * The raw vectors of the planned views: those already stored with the index (same model,
 * localisation, item image, kind, seed and neighbours) are read back, the rest embedded,
 * and the file rewritten when anything was new. A view whose photo cannot be drawn (an
 * unreadable image) is left out.
 */
export async function embedViews(options: EmbedViewsOptions): Promise<TrainingViews> {
  const started = performance.now();
  const { manifest, ids, images, plan } = options;
  const localise = options.localise ?? DEFAULT_LOCALISATION;
  const dim = manifest.dimension;
  const model = modelKey(manifest);

  const store = await openStore(options.indexDir, { readonly: true });
  let stored: Stored | undefined;
  let sources: Map<string, ImageSource>;
  try {
    stored = decodeViews(store.getFile(VIEWS_FILE));
    sources = await store.imageSources();
  } finally {
    await store.close();
  }
  // The image bytes' hash (else the path) names a view's photo: a replaced photo is re-drawn.
  const imageKey = (row: number) => sources.get(ids[row])?.hash ?? images[row];
  const keyOf = (v: ViewPlan) => [ids[v.row], v.kind, v.seed, imageKey(v.row), ids[v.others[0]], imageKey(v.others[0]), ids[v.others[1]], imageKey(v.others[1])].join('|');
  const usable = stored && stored.meta.model === model && stored.meta.localise === localise && stored.meta.dim === dim ? stored : undefined;
  const storedRow = new Map<string, number>((usable?.meta.keys ?? []).map((k, i) => [k, i]));

  const keys = plan.map(keyOf);
  let colourDim = usable?.meta.colourDim ?? 0;
  const found: Array<{ max: Float32Array; avg: Float32Array; colour: Float32Array } | undefined> = plan.map((_, i) => {
    const at = storedRow.get(keys[i]);
    if (at === undefined || !usable) return undefined;
    const cd = usable.meta.colourDim;
    return { max: usable.max.subarray(at * dim, (at + 1) * dim), avg: usable.avg.subarray(at * dim, (at + 1) * dim), colour: usable.colour.subarray(at * cd, (at + 1) * cd) };
  });
  const missing = plan.map((_, i) => i).filter((i) => !found[i]);
  const reused = plan.length - missing.length;
  const failed = new Set<number>();

  if (missing.length) {
    options.log?.(`views: ${reused} of ${plan.length} stored with the index; embedding ${missing.length} shopper photos of training items (${localise} localisation, as photo queries)...`);
    const settings = storedSettings(manifest.settings);
    const embedder = await Embedder.create(settings.backbone, { precision: settings.precision, calibration: manifest.calibration });
    try {
      // As Lookalike does for a query: the very model that embedded the catalog.
      if (embedder.weightsId !== manifest.weightsId) throw new LookalikeError('MODEL_MISMATCH', { index: options.indexDir, indexed: manifest.weightsId, requested: embedder.weightsId });
      const prep = prepareOptionsFor(settings);
      const batch = 8;
      for (let start = 0; start < missing.length; start += batch) {
        if (options.signal?.aborted) break;
        const slice = missing.slice(start, start + batch);
        const drawn = await Promise.all(slice.map(async (i) => {
          const v = plan[i];
          try {
            const photo = await perturbPhoto(images[v.row], v.kind, v.seed, v.others.map((o) => images[o]));
            return { photo, prepared: await prepareImage(photo, { ...prep, label: `view ${i}` }) };
          } catch {
            failed.add(i);
            return undefined;
          }
        }));
        const ok = slice.map((i, j) => ({ i, d: drawn[j] })).filter((x): x is { i: number; d: { photo: Buffer; prepared: PreparedImage } } => !!x.d);
        const raws = await photoBatchVectors(embedder, settings, ok.map((x) => ({ input: x.d.photo, prepared: x.d.prepared, label: `view ${x.i}` })), localise);
        ok.forEach((x, j) => {
          colourDim = raws[j].colourDim;
          found[x.i] = { max: raws[j].max, avg: raws[j].avg, colour: raws[j].colour };
        });
        options.onProgress?.(Math.min(missing.length, start + batch), missing.length);
      }
    } finally {
      await embedder.release();
    }
  }

  const kept = plan.map((_, i) => i).filter((i) => found[i]);
  const n = kept.length;
  const max = new Float32Array(n * dim), avg = new Float32Array(n * dim), colour = new Float32Array(n * colourDim);
  kept.forEach((i, j) => {
    const f = found[i]!;
    max.set(f.max, j * dim);
    avg.set(f.avg, j * dim);
    colour.set(f.colour, j * colourDim);
  });
  const embedded = missing.filter((i) => found[i]).length;
  if (embedded > 0 && !options.signal?.aborted) {
    const meta: ViewsMeta = { format: 'lookalike-views', version: 2, model, localise, dim, colourDim, keys: kept.map((i) => keys[i]) };
    const writable = await openStore(options.indexDir);
    try {
      await writable.putFile(VIEWS_FILE, encodeViews(meta, max, avg, colour));
    } finally {
      await writable.close();
    }
  }
  if (failed.size) options.log?.(`views: ${failed.size} photo(s) could not be drawn (unreadable images), left out`);
  return {
    rows: Int32Array.from(kept, (i) => plan[i].row),
    kinds: kept.map((i) => plan[i].kind),
    seeds: kept.map((i) => plan[i].seed),
    raw: { n, max, avg, colour, dim, colourDim },
    embedded,
    reused,
    seconds: (performance.now() - started) / 1000,
  };
}
