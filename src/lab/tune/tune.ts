/**
 * Tuning: which settings give the best recommendations for their cost?
 *
 * Two sweeps, because the settings differ in what they cost to try:
 *  - settings over the stored vectors (pooling: both are stored; embedding size: PCA
 *    fitted on the catalog; k; the similarity threshold) are swept on the whole index,
 *    with no re-embedding: one batched search per (pooling, size) at the largest k, and
 *    every smaller k scored from its prefix;
 *  - image settings (input size, resize mode) change the vectors themselves, so each one
 *    re-embeds a stratified sample of the catalog (`sample` items, stratified by the
 *    primary attribute) into a temporary index. Their quality is measured within that
 *    sample and is only comparable between image settings, not with the full-index figures.
 *
 * The best settings are chosen by the primary attribute (articleType by default):
 * the pooling with the higher precision@k; k = the largest swept k (at least the compared
 * k, 5 by default) whose precision@k still reaches the target precision; the lowest
 * threshold at which the kept neighbours among the top kMax still reach it.
 */
import { DEFAULT_IMAGE_SETTINGS } from '../../defaults.js';
import { isStoreUrl, parseLocation, redact } from '../../store/location.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lookalike, type TunedDefaults } from '../../lookalike.js';
import { Embedder } from '../../model/embedder.js';
import { defaultSettings, POOLINGS, type Pooling, type Precision, type ResizeMode } from '../../model/registry.js';
import { buildIndex } from '../../indexing/build.js';
import { prepareImage } from '../../image/prepare.js';
import { prepareOptionsFor } from '../../image/options.js';
import { evaluate, findNeighbours, neighbourScores, suggestThreshold, summarise, type EvalResult, type Neighbours, type ThresholdPoint } from '../eval/evaluate.js';
import { evaluateIndex, labelsOf, resolveAttributes } from '../eval/evaluate-index.js';
import { Random, sampleWithoutReplacement } from '../../math/random.js';
import { topK } from '../../search/kernel.js';
import { percentile, scoreHistogram, type Histogram } from '../../math/stats.js';
import { fitForSizes, projectNormalised } from './reduce.js';
import { stratifiedSample } from '../../catalog/sample.js';

export interface Metrics { precisionAt1: number; precisionAtK: number; mapAtK: number; knnAccuracy: number; macroF1: number }

export interface VectorRow {
  pooling: Pooling;
  dims: number;
  k: number;
  /** Per attribute. */
  metrics: Record<string, Metrics>;
  /** Median time of one exact search over the whole index (no embedding), ms. */
  searchMs: number;
  /** Bytes of the search matrix (n x dims float32). */
  matrixBytes: number;
}

export interface ImageRow {
  width: number;
  height: number;
  resize: ResizeMode;
  /** Whether these are the index's own image settings. */
  current: boolean;
  items: number;
  /** Indexing throughput (decode + resize + backbone), images per second. */
  imagesPerSecond: number;
  /** Median time of one query from an image file: decode and resize, embed, then search
   *  the whole index (ms). */
  queryMs: number;
  /** Bytes of the search matrix for the whole catalog at these settings. */
  matrixBytes: number;
  /** Relative network cost (pixels / 224²). */
  relativeCost: number;
  k: number;
  metrics: Record<string, Metrics>;
}

export interface ThresholdResult {
  attribute: string;
  pooling: Pooling;
  /** Neighbours per query the scores come from. */
  k: number;
  target: number;
  suggested?: number;
  precisionAtSuggested?: number;
  keptAtSuggested?: number;
  histogram: Histogram;
  curve: ThresholdPoint[];
  same: number;
  different: number;
}

export interface TuneResult {
  index: string;
  items: number;
  /** Queries of the vector sweep (leave-one-out against the whole index). */
  queries: number;
  attribute: string;
  attributes: string[];
  ks: number[];
  /** The k at which poolings, sizes and image settings are compared. */
  compareK: number;
  targetPrecision: number;
  vector: VectorRow[];
  threshold: ThresholdResult;
  image?: { sample: number; catalog: string; rows: ImageRow[]; skipped?: string };
  best: {
    pooling: Pooling;
    k: number;
    threshold?: number;
    /** Best quality; and the cheapest image setting within 0.01 of it. */
    image?: { best: ImageRow; cheapest: ImageRow };
  };
  seconds: { vector: number; image: number; total: number };
}

export interface TuneOptions {
  poolings?: Pooling[];
  dims?: number[];
  ks?: number[];
  /** The k at which settings are compared (default 5). */
  compareK?: number;
  attributes?: string[];
  targetPrecision?: number;
  /** Query items for the vector sweep (leave-one-out against all items); 0 = every item. Default 8000. */
  querySample?: number;
  /** Image settings to re-embed on a sample (default DEFAULT_IMAGE_SETTINGS). */
  imageSettings?: readonly ImageSetting[];
  /** Items re-embedded per image setting; 0 skips the image sweep. Default 1000. */
  sample?: number;
  /** Catalog the sample is read from (default: the index's catalog root). */
  catalogDir?: string;
  seed?: number;
  log?: (message: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface ImageSetting { width: number; height: number; resize: ResizeMode }

const pick = (r: EvalResult): Record<string, Metrics> => Object.fromEntries(r.attributes.map((a) => [a.attribute, {
  precisionAt1: a.precisionAt1, precisionAtK: a.precisionAtK, mapAtK: a.mapAtK, knnAccuracy: a.knnAccuracy, macroF1: a.macroF1,
}]));

function searchLatency(matrix: Float32Array, dim: number, k: number, runs = 30): number {
  const n = matrix.length / dim;
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const row = (i * 7919) % n;
    const t = performance.now();
    topK(matrix, dim, matrix.subarray(row * dim, (row + 1) * dim), { k, exclude: row });
    if (i > 0) times.push(performance.now() - t); // the first run warms the JIT
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

export async function tune(lookalike: Lookalike, options: TuneOptions = {}): Promise<TuneResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const progress = options.onProgress ?? (() => {});
  const index = lookalike.indexView();
  const attributes = resolveAttributes(lookalike.manifest.catalog.columns, options.attributes);
  const primary = attributes[0];
  const labels = labelsOf(lookalike, attributes);
  const ids = index.items.map((i) => i.id);
  const n = ids.length;
  const compareK = options.compareK ?? 5;
  const ks = [...new Set([...(options.ks ?? [1, 5, 10, 20]), compareK])].sort((a, b) => a - b);
  const kMax = Math.min(ks[ks.length - 1], n - 1);
  const target = options.targetPrecision ?? 0.8;
  const poolings = options.poolings ?? [...POOLINGS];
  const seed = options.seed ?? 0;
  const querySample = options.querySample ?? 8000;
  const queryRows = querySample > 0 && querySample < n ? sampleWithoutReplacement(new Random(seed), n, querySample) : undefined;
  const nq = queryRows ? queryRows.length : n;

  // 1. Settings over the stored vectors.
  const vectorStart = performance.now();
  const vector: VectorRow[] = [];
  const fullNeighbours = new Map<Pooling, Neighbours>();
  let fullDim = 0;
  for (const pooling of poolings) {
    const { data, dim } = index.matrix(lookalike.space({ pooling }));
    fullDim = dim;
    const dims = [...new Set(options.dims ?? [2048, 1024, 512, 256, 128])].map((d) => Math.min(d, dim)).sort((a, b) => b - a);
    const usable = [...new Set(dims.filter((d) => d === dim || d < n - 1))];
    const reduced = usable.filter((d) => d < dim);
    let pca;
    if (reduced.length) {
      log(`${pooling} pooling: fitting PCA (${Math.max(...reduced)} components) on the catalog...`);
      const t = performance.now();
      pca = fitForSizes(data, n, dim, reduced, seed);
      log(`  PCA fitted in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    for (const d of usable) {
      const matrix = d === dim ? data : await projectNormalised(pca!, data, n, d);
      const t = performance.now();
      const nb = await findNeighbours(matrix, d, ids, kMax, { queryRows, onProgress: (done, total) => progress(`${pooling} ${d}-d`, done, total) });
      if (d === dim) fullNeighbours.set(pooling, nb);
      const searchMs = searchLatency(matrix, d, compareK);
      for (const k of ks) {
        if (k > nb.k) continue;
        vector.push({ pooling, dims: d, k, metrics: pick(summarise(nb, { ids, labels, dim: d }, k)), searchMs, matrixBytes: n * d * 4 });
      }
      const row = vector.find((r) => r.pooling === pooling && r.dims === d && r.k === compareK);
      log(`  ${pooling} ${d}-d: ${primary} precision@${compareK} ${row?.metrics[primary].precisionAtK.toFixed(3)} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
    }
  }
  const vectorSeconds = (performance.now() - vectorStart) / 1000;

  const at = (pooling: Pooling, dims: number, k: number) => vector.find((r) => r.pooling === pooling && r.dims === dims && r.k === k);
  const bestPooling = [...poolings].sort((a, b) => (at(b, fullDim, compareK)?.metrics[primary].precisionAtK ?? 0) - (at(a, fullDim, compareK)?.metrics[primary].precisionAtK ?? 0))[0];
  // k is how many recommendations a page shows: at least compareK, more while precision@k
  // still reaches the target. Below it, the threshold (tuned on the top kMax, so valid for
  // any k up to it) trims the weak ones.
  const reaching = ks.filter((k) => k >= compareK && (at(bestPooling, fullDim, k)?.metrics[primary].precisionAtK ?? 0) >= target);
  const bestK = reaching.length ? reaching[reaching.length - 1] : Math.min(compareK, kMax);

  // 2. Threshold: scores of the top-kMax neighbours at the best pooling, same vs different class.
  const nb = fullNeighbours.get(bestPooling)!;
  const { same, different } = neighbourScores(nb, labels[primary], nb.k);
  const suggestion = suggestThreshold(same, different, target);
  const threshold: ThresholdResult = {
    attribute: primary, pooling: bestPooling, k: nb.k, target, ...suggestion,
    histogram: scoreHistogram(same, different), same: same.length, different: different.length,
  };

  // 3. Image settings, on a stratified sample.
  const imageStart = performance.now();
  let image: TuneResult['image'];
  const sample = Math.min(options.sample ?? 1000, n);
  const imageSettings = options.imageSettings ?? DEFAULT_IMAGE_SETTINGS;
  if (sample > 0 && imageSettings.length) {
    const catalog = options.catalogDir ?? lookalike.manifest.catalog.root;
    if (!existsSync(catalog)) {
      image = { sample, catalog, rows: [], skipped: `the catalog ${catalog} is not readable here, so image settings cannot be re-embedded (pass the catalog folder)` };
    } else {
      image = { sample, catalog, rows: await sweepImages(lookalike, {
        catalog, sample, settings: imageSettings, attributes, primary, compareK, pooling: bestPooling,
        fullSearchMs: at(bestPooling, fullDim, compareK)?.searchMs ?? 0, log, progress,
      }) };
    }
  }
  const imageSeconds = (performance.now() - imageStart) / 1000;

  let bestImage: TuneResult['best']['image'];
  if (image?.rows.length) {
    const score = (r: ImageRow) => r.metrics[primary].precisionAtK;
    const best = [...image.rows].sort((a, b) => score(b) - score(a))[0];
    const cheapest = image.rows.filter((r) => score(r) >= score(best) - 0.01).sort((a, b) => a.relativeCost - b.relativeCost || score(b) - score(a))[0];
    bestImage = { best, cheapest };
  }

  return {
    index: lookalike.indexDir,
    items: n,
    queries: nq,
    attribute: primary,
    attributes,
    ks: ks.filter((k) => k <= kMax),
    compareK,
    targetPrecision: target,
    vector,
    threshold,
    image,
    best: { pooling: bestPooling, k: bestK, threshold: suggestion.suggested, image: bestImage },
    seconds: { vector: vectorSeconds, image: imageSeconds, total: (performance.now() - started) / 1000 },
  };
}

/** Items embedded to time indexing for the index's own settings (whose vectors are reused). */
const SPEED_PROBE = 96;

async function sweepImages(lookalike: Lookalike, o: {
  catalog: string; sample: number; settings: readonly ImageSetting[];
  attributes: string[]; primary: string; compareK: number; pooling: Pooling; fullSearchMs: number;
  log: (m: string) => void; progress: (stage: string, done: number, total: number) => void;
}): Promise<ImageRow[]> {
  const index = lookalike.indexView();
  const sampleIds = stratifiedSample(index.items.map((i) => ({ id: i.id, value: i.metadata[o.primary] ?? '' })), o.sample);
  const ids = new Set(sampleIds);
  const sampleItems = index.items.filter((i) => ids.has(i.id));
  const current = lookalike.settings;
  o.log(`image settings: re-embedding a stratified sample of ${ids.size} items (by ${o.primary}) for each of ${o.settings.length} settings`);
  // The index's own arithmetic: an int8 index's sweep runs the model of its calibration at
  // every size (a new index at another size would calibrate afresh at that size).
  const embedder = await Embedder.create(current.backbone, { precision: current.precision, calibration: lookalike.manifest.calibration });
  const probes = sampleItems.filter((_, i) => i % Math.max(1, Math.floor(sampleItems.length / 12)) === 0).slice(0, 12);
  const rows: ImageRow[] = [];
  try {
    for (const setting of o.settings) {
      const { width, height, resize } = setting;
      const label = `${width}x${height} ${resize}`;
      const settings = { ...current, width, height, resize, pooling: o.pooling };
      const isCurrent = width === current.width && height === current.height && resize === current.resize;
      const dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-tune-'));
      try {
        // The index's own settings: its stored vectors are the sample's vectors, so only
        // the speed needs measuring, on a few images.
        const speedIds = isCurrent ? new Set(sampleIds.slice(0, SPEED_PROBE)) : ids;
        const report = await buildIndex({
          catalogDir: o.catalog, indexDir: dir, embedder, settings,
          select: (id) => speedIds.has(id),
          onProgress: (p) => o.progress(label, p.done, p.total),
        });
        let result: EvalResult;
        if (isCurrent) {
          const { data, dim } = index.matrix(lookalike.space({ pooling: o.pooling }));
          const rowsOf = sampleItems.map((i) => index.rowOf(i.id));
          const matrix = new Float32Array(rowsOf.length * dim);
          rowsOf.forEach((r, i) => matrix.set(data.subarray(r * dim, (r + 1) * dim), i * dim));
          result = await evaluate({
            matrix, dim, ids: sampleItems.map((i) => i.id), k: o.compareK,
            labels: Object.fromEntries(o.attributes.map((a) => [a, sampleItems.map((i) => (i.metadata[a] ?? '').trim())])),
          });
        } else {
          const sampleIndex = await Lookalike.open(dir);
          try {
            result = await evaluateIndex(sampleIndex, { k: o.compareK, attributes: o.attributes, pooling: o.pooling });
          } finally {
            await sampleIndex.close();
          }
        }
        // A query from a photo: decode and resize, run the backbone, then search the whole
        // index (that search time was measured in the stored-vector sweep).
        const prep = prepareOptionsFor(settings);
        const times: number[] = [];
        for (const [i, item] of probes.entries()) {
          const t = performance.now();
          const prepared = await prepareImage(item.image, prep);
          await embedder.run(prepared.tensor, 1, height, width);
          if (i > 0) times.push(performance.now() - t); // the first run warms up
        }
        const row: ImageRow = {
          width, height, resize,
          current: isCurrent,
          items: isCurrent ? sampleItems.length : report.total,
          imagesPerSecond: report.imagesPerSecond,
          queryMs: percentile(times.sort((a, b) => a - b), 50) + o.fullSearchMs,
          matrixBytes: index.size * embedder.dimension * 4,
          relativeCost: (width * height) / (224 * 224),
          k: result.k,
          metrics: pick(result),
        };
        rows.push(row);
        o.log(`  ${label}${isCurrent ? ' (the index\'s own; stored vectors)' : ''}: ${o.primary} precision@${o.compareK} ${row.metrics[o.primary].precisionAtK.toFixed(3)} on the sample, ${row.imagesPerSecond.toFixed(1)} images/s, query ${row.queryMs.toFixed(0)} ms`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await embedder.release();
  }
  return rows;
}

/** What `--apply` stores under manifest.extensions.tuned (Lookalike.saveTuning). */
export type { TunedDefaults } from '../../lookalike.js';

/**
 * Writes the chosen search settings into the index: the default pooling
 * (manifest.settings.pooling) and the default k and threshold (manifest.extensions.tuned,
 * read by `lookalike.defaults()`). Image settings cannot change without re-embedding.
 */
export async function applyTuned(lookalike: Lookalike, result: TuneResult): Promise<TunedDefaults> {
  const tuned: TunedDefaults = {
    pooling: result.best.pooling,
    k: result.best.k,
    // Rounded down so that the suggested neighbours themselves stay above it.
    threshold: result.best.threshold === undefined ? undefined : Math.floor(result.best.threshold * 10_000) / 10_000,
    space: `backbone:${result.best.pooling}`,
    attribute: result.attribute,
    targetPrecision: result.targetPrecision,
    tunedAt: new Date().toISOString(),
  };
  await lookalike.saveTuning(tuned);
  return tuned;
}

/** The `lookalike index` command that rebuilds an index with other image settings. */
export function rebuildCommand(catalog: string, indexDir: string, row: { width: number; height: number; resize: ResizeMode }, precision?: Precision): string {
  // The index's arithmetic is kept (a float32 index is rebuilt in float32).
  const keep = precision && precision !== defaultSettings().precision ? ` --precision ${precision}` : '';
  if (isStoreUrl(indexDir)) {
    // A shared store: a new index name beside this one, in the same database.
    const { index, url } = parseLocation(indexDir);
    return `lookalike index ${JSON.stringify(catalog)} --store ${JSON.stringify(redact(url))} --index ${index}_${row.width}x${row.height}_${row.resize} --size ${row.width}x${row.height} --resize ${row.resize}${keep}`;
  }
  const target = `${indexDir.replace(/\/+$/, '')}-${row.width}x${row.height}-${row.resize}`;
  return `lookalike index ${JSON.stringify(catalog)} --index ${JSON.stringify(target)} --size ${row.width}x${row.height} --resize ${row.resize}${keep}`;
}
