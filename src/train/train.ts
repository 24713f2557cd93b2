/**
 * `lookalike train`: learns a head from the catalog's own labels over the backbone vectors
 * already stored in the index (the CNN is never re-run), then makes it the index's
 * embedding.
 *
 * A share of the items (isHeldOut(id, fraction), the split `lookalike eval --queries`
 * uses) is never trained on: it drives early stopping and gives the before/after figures,
 * measured as held-out items querying the training items.
 *
 * Besides the packshots, it learns from shopper photos of training items (train/views.ts):
 * the one step that runs the CNN, once per view, its vectors then stored with the index.
 */
import { describeLocation, indexArgs } from '../store/location.js';
import { DEFAULT_MODE, FASHION_LABELS } from '../defaults.js';
import { DEFAULT_LOCALISATION } from '../photo/vectors.js';
import { LookalikeError } from '../errors.js';
import { openStore } from '../store/open.js';
import type { IndexManifest } from '../store/types.js';
import { imageFingerprint } from '../model/registry.js';
import { isHeldOut } from '../eval/split.js';
import { evaluate, type AttributeResult } from '../eval/evaluate.js';
import { batchTopK, normaliseRows } from '../search/kernel.js';
import { loadRawVectors, type RawVectors } from '../search/space.js';
import { Random } from '../math/random.js';
import { DEFAULT_LABELS, classWeights, planLabels, type LabelPlan, type LabelTask } from './labels.js';
import { applyReducer, fitReducer } from '../head/reduce.js';
import { AdamW, DEFAULT_HYPER, forward, initParams, inputWidth, step, type Hyper, type NetShape, type Params, type TaskSpec } from '../head/network.js';
import { backboneFeatures, Head, headId, MODES, type HeadMeta, type Mode, type ModeWeights } from '../head/head.js';
import { installHead, type HeadRef } from '../head/index-head.js';
import { DEFAULT_VIEWS, embedViews, planViews, type TrainingViews } from './views.js';

/** Measured with `lookalike robustness` (docs/shopper-photos.md). */
export const WHITENING_SHRINKAGE = 0;

/**
 * Measured with `lookalike robustness` (docs/shopper-photos.md): on the dev index a pull
 * of 1 gave recall@10 0.942 against 0.944 without, and 0.2 to 0.4 points less leave-one-out.
 */
export const VIEW_PULL = 0;

/** Name of the view-to-item task in the per-epoch losses (the label columns' are their names). */
export const VIEW_TASK = '~item';

export interface TrainOptions {
  indexDir: string;
  /** Label columns; default: those of DEFAULT_LABELS the catalog has. */
  labels?: string[];
  /** Width of the style part of the embedding. Default 256. */
  dim?: number;
  /** Most epochs (early stopping may end sooner). Default: about 1,200 steps, 12 to 60 epochs. */
  epochs?: number;
  /** Held-out share for validation and the reported figures. Default 0.2. */
  holdout?: number;
  seed?: number;
  hidden?: number;
  /** PCA width of the backbone features. Default 384. */
  reduced?: number;
  /** Regularised whitening of those (head/reduce.ts). Default WHITENING_SHRINKAGE. */
  shrinkage?: number;
  /** Width of the colour part (0: the colour histogram itself). Default 64 when a colour column is learnt. */
  colourDim?: number;
  batchSize?: number;
  /** Epochs without a better validation score before stopping. Default 4. */
  patience?: number;
  hyper?: Partial<Hyper>;
  /** Loss weight per label column (default 1; DEFAULT_TASK_WEIGHTS for some). */
  taskWeights?: Record<string, number>;
  /** Loss weight of the label columns after the first, unless named above. Default 1. */
  secondaryWeight?: number;
  /**
   * Class balancing of the first (main) column: loss weight ∝ count^-balance (0 none, 1
   * full). Default 0.5. `secondaryBalance` (default 0) is for the other columns, whose
   * figures are precision over all queries, which balancing only lowers.
   */
  balance?: number;
  secondaryBalance?: number;
  modes?: Partial<Record<Mode, ModeWeights>>;
  defaultMode?: Mode;
  /**
   * Shopper-photo views of training items to learn from besides the packshots (train/views.ts),
   * embedded once and stored with the index. Default DEFAULT_VIEWS; 0: packshots only.
   */
  views?: number;
  /**
   * Loss weight of the pull of each view toward its own item: one more cosine classifier
   * (not kept in the head) whose classes are the viewed items, the packshot and its views
   * sharing a class. Default VIEW_PULL; 0: views only count as labelled samples.
   */
  viewPull?: number;
  /** Called while views are embedded. */
  onViews?: (done: number, total: number) => void;
  /** Make the head the index's embedding (default true). */
  install?: boolean;
  /** Skip the before/after table (tests). */
  compare?: boolean;
  log?: (message: string) => void;
  onEpoch?: (epoch: EpochReport) => void;
  onBatch?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  /** Mean training loss per label column. */
  loss: Record<string, number>;
  /** Held-out precision@5 per label column, in that column's part of the embedding. */
  validation: Record<string, number>;
  score: number;
  best: boolean;
  seconds: number;
}

/** One row of the before/after table: held-out precision@5 (and kNN macro-F1) per space. */
export interface ComparisonRow {
  attribute: string;
  metric: 'precision@5' | 'macro-F1';
  backbone: number;
  head: Record<Mode, number>;
}

export interface TrainReport {
  head: Head;
  ref?: HeadRef;
  labels: LabelPlan;
  epochs: EpochReport[];
  bestEpoch: number;
  items: number;
  trainItems: number;
  heldOutItems: number;
  /** Training proper (views, features, PCA, epochs), without the before/after evaluation. */
  seconds: number;
  /** The shopper-photo views trained on (absent with views: 0). */
  views?: { count: number; embedded: number; reused: number; seconds: number };
  comparison: ComparisonRow[];
  /** Backbone space the comparison starts from, e.g. "backbone:max". */
  baseline: string;
}

/**
 * Share of the cosine from each part, per mode. Measured on the dev catalog's held-out
 * items (style weight 1 / 0.75 / 0.4): article type precision@5 0.84 / 0.82 / 0.79,
 * base colour 0.37 / 0.57 / 0.61 (plain backbone: 0.77 and 0.39). Balanced keeps the
 * style figures within 2 points and gets the colour right far more often; colour mode
 * puts colour first and still beats the plain backbone on type.
 */
export const DEFAULT_MODES: Record<Mode, ModeWeights> = {
  style: { style: 1, colour: 0 },
  balanced: { style: 0.75, colour: 0.25 },
  colour: { style: 0.4, colour: 0.6 },
};

/**
 * Loss weights of well-known columns. The coarse categories only guide (0.5). Gender
 * counts double: on the dev catalog, equal weights left held-out gender precision@5 at
 * 0.896 (backbone 0.857); at 2 it is 0.908, for 0.004 of article type precision.
 */
export const DEFAULT_TASK_WEIGHTS: Record<string, number> = { gender: 2, subCategory: 0.5, masterCategory: 0.5 };

/**
 * `--labels articleType,gender:2,baseColour`: column names, each with an optional loss
 * weight after a colon.
 */
export function parseLabelSpec(spec: string): { labels: string[]; weights: Record<string, number> } {
  const labels: string[] = [];
  const weights: Record<string, number> = {};
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(.*?)(?::\s*([^:]*))?$/.exec(part)!;
    const column = m[1].trim();
    if (!column) throw new LookalikeError('BAD_OPTION', { message: `--labels: "${part}" names no column.` });
    if (m[2] !== undefined) {
      const w = Number(m[2]);
      if (!(Number.isFinite(w) && w > 0 && w <= 100)) throw new LookalikeError('BAD_OPTION', { message: `--labels: the weight of ${column} must be a number above 0 (up to 100), not "${m[2]}".` });
      weights[column] = w;
    }
    if (!labels.includes(column)) labels.push(column);
  }
  if (!labels.length) throw new LookalikeError('BAD_OPTION', { message: '--labels needs at least one column name, e.g. --labels articleType,gender.' });
  return { labels, weights };
}

/** Columns the before/after table reports besides the learnt ones, when the catalog has them. */
const REPORTED: readonly string[] = FASHION_LABELS;

interface Loaded { manifest: IndexManifest; ids: string[]; images: string[]; metadata: Array<Record<string, string>>; raw: RawVectors }

async function loadIndex(indexDir: string): Promise<Loaded> {
  const store = await openStore(indexDir, { readonly: true });
  try {
    const manifest = store.getManifest();
    if (!manifest || store.count().embedded === 0) throw new LookalikeError('INDEX_EMPTY', { path: describeLocation(indexDir), args: indexArgs(indexDir) });
    const { ids, raw } = await loadRawVectors(store);
    const items = new Map(store.listItems().map((i) => [i.id, i]));
    return {
      manifest,
      ids,
      images: ids.map((id) => items.get(id)?.image ?? ''),
      metadata: ids.map((id) => items.get(id)?.metadata ?? {}),
      raw,
    };
  } finally {
    await store.close();
  }
}

export async function trainHead(options: TrainOptions): Promise<TrainReport> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const holdout = options.holdout ?? 0.2;
  if (!(holdout > 0 && holdout < 1)) throw new LookalikeError('BAD_OPTION', { message: `the held-out share must be between 0 and 1 (exclusive), not ${holdout}.` });
  const seed = options.seed ?? 1;
  const rng = new Random(seed);
  const hyper: Hyper = { ...DEFAULT_HYPER, ...options.hyper };

  const { manifest, ids, images, metadata, raw } = await loadIndex(options.indexDir);
  const n = ids.length;
  const columns = manifest.catalog.columns;
  const wanted = options.labels?.length ? options.labels : DEFAULT_LABELS.filter((c) => columns.includes(c));
  if (!wanted.length) {
    throw new LookalikeError('TRAIN_NO_LABELS', {
      message: `this catalog has none of the default label columns (${DEFAULT_LABELS.join(', ')}); its columns are: ${columns.join(', ') || '(none)'}. Name the columns to learn with --labels, e.g. --labels ${columns[0] ?? 'articleType'}.`,
    });
  }
  const unknown = wanted.filter((c) => !columns.includes(c));
  if (unknown.length) {
    throw new LookalikeError('TRAIN_NO_LABELS', { message: `no column ${unknown.map((c) => `"${c}"`).join(', ')} in this catalog. Its columns are: ${columns.join(', ') || '(none)'}.` });
  }

  const heldOut = new Uint8Array(n);
  for (let r = 0; r < n; r++) heldOut[r] = isHeldOut(ids[r], holdout) ? 1 : 0;
  const isTrain = heldOut.map((h) => 1 - h);
  const plan = planLabels(metadata, wanted, isTrain);
  for (const s of plan.skipped) log(`label ${s.column}: skipped (${s.reason})`);
  if (!plan.tasks.length) {
    throw new LookalikeError('TRAIN_NO_LABELS', {
      message: `nothing to learn from: ${plan.skipped.map((s) => `${s.column}: ${s.reason}`).join('; ')}. Choose label columns with at least two values that each occur a few times (--labels).`,
    });
  }
  for (const t of plan.tasks) {
    const notes = [`${t.classes.length} classes`];
    if (t.missing) notes.push(`${t.missing} items without a usable value`);
    if (t.merged.length) notes.push(`merged ${t.merged.map((m) => `"${m.from}"→"${m.to}"`).slice(0, 5).join(', ')}${t.merged.length > 5 ? ', ...' : ''}`);
    if (t.rare.length) notes.push(`${t.rare.length} rare value(s) not learnt (${t.rare.slice(0, 3).map((r) => r.value).join(', ')}${t.rare.length > 3 ? ', ...' : ''})`);
    log(`label ${t.column} (${t.kind}): ${notes.join('; ')}`);
  }

  // Training rows: not held out, and labelled in at least one task.
  const trainList: number[] = [];
  const valList: number[] = [];
  for (let r = 0; r < n; r++) {
    if (heldOut[r]) valList.push(r);
    else if (plan.tasks.some((t) => t.codes[r] >= 0)) trainList.push(r);
  }
  if (trainList.length < 2) {
    throw new LookalikeError('TRAIN_NO_LABELS', { message: `only ${trainList.length} labelled item(s) to train on outside the held-out share: index more of the catalog first.` });
  }
  const trainRows = Int32Array.from(trainList);
  log(`${n} items: ${trainRows.length} to train on, ${valList.length} held out (${Math.round(holdout * 100)}%, by id hash) for validation`);

  // Shopper photos of training items, each a sample with its item's labels: the head learns
  // what a busy background, dim light or a neighbour do not change.
  let views: TrainingViews | undefined;
  const viewCount = options.views ?? DEFAULT_VIEWS;
  if (viewCount > 0) {
    const plan = planViews(ids, trainRows, viewCount, seed, holdout);
    views = await embedViews({ indexDir: options.indexDir, manifest, ids, images, plan, log, onProgress: options.onViews, signal: options.signal });
    if (views.raw.colourDim !== raw.colourDim && views.raw.n) throw new Error(`view colour histograms have ${views.raw.colourDim} bins, the catalog's ${raw.colourDim}`);
    log(`views: ${views.raw.n} shopper photos of ${new Set(views.rows).size} training items (${views.embedded} embedded, ${views.reused} stored) in ${views.seconds.toFixed(1)} s`);
  }
  const nViews = views?.raw.n ?? 0;
  // Label codes of catalog rows, then of each view (its item's).
  const codes = plan.tasks.map((t) => {
    const c = new Int32Array(n + nViews);
    c.set(t.codes);
    for (let v = 0; v < nViews; v++) c[n + v] = t.codes[views!.rows[v]];
    return c;
  });

  // Features -> whitened PCA -> network inputs, computed once. The PCA and the colour
  // standardiser are fitted on the catalog's training rows only, as before.
  const featureStart = performance.now();
  const feats = backboneFeatures(raw, 0, n, 0.5);
  const reducedDim = Math.min(options.reduced ?? 384, 2 * raw.dim, trainRows.length);
  const reducer = await fitReducer(feats, 2 * raw.dim, trainRows, reducedDim, { seed, shrinkage: options.shrinkage ?? WHITENING_SHRINKAGE });
  const reduced = await applyReducer(reducer, feats, n);
  const colourDimIn = raw.colourDim;
  const colourMean = new Float32Array(colourDimIn), colourScale = new Float32Array(colourDimIn);
  standardiser(raw.colour, colourDimIn, trainRows, colourMean, colourScale);
  const hasColourTask = plan.tasks.some((t) => t.kind === 'colour');
  const shape: NetShape = {
    reduced: reducedDim,
    colourIn: colourDimIn,
    hidden: options.hidden ?? 1024,
    styleDim: options.dim ?? 256,
    colourDim: hasColourTask ? (options.colourDim ?? 64) : 0,
  };
  const din = inputWidth(shape);
  const inputs = new Float32Array((n + nViews) * din);
  const fill = (at: number, red: Float32Array, colour: Float32Array, count: number) => {
    for (let r = 0; r < count; r++) {
      const o = (at + r) * din;
      inputs.set(red.subarray(r * reducedDim, (r + 1) * reducedDim), o);
      for (let j = 0; j < colourDimIn; j++) inputs[o + reducedDim + j] = (colour[r * colourDimIn + j] - colourMean[j]) * colourScale[j];
    }
  };
  fill(0, reduced, raw.colour, n);
  if (views && nViews) fill(n, await applyReducer(reducer, backboneFeatures(views.raw, 0, nViews, 0.5), nViews), views.raw.colour, nViews);
  log(`features: both poolings (${2 * raw.dim}) -> PCA ${reducedDim} + colour ${colourDimIn} in ${((performance.now() - featureStart) / 1000).toFixed(1)} s`);

  const tasks: TaskSpec[] = plan.tasks.map((t, i) => ({
    name: t.column,
    group: t.kind === 'colour' ? 'colour' : 'style',
    classes: t.classes.length,
    // The first column named is the main one.
    weight: options.taskWeights?.[t.column] ?? DEFAULT_TASK_WEIGHTS[t.column] ?? (i === 0 ? 1 : (options.secondaryWeight ?? 1)),
    classWeights: classWeights(t.counts, i === 0 ? (options.balance ?? 0.5) : (options.secondaryBalance ?? 0)),
  }));
  // The pull of views toward their items: a class per viewed item, its packshot and views
  // labelled with it, every other row left out of this loss.
  const pull = options.viewPull ?? VIEW_PULL;
  const trainTasks = [...tasks];
  if (views && nViews && pull > 0) {
    const itemClass = new Map<number, number>();
    for (const r of views.rows) if (!itemClass.has(r)) itemClass.set(r, itemClass.size);
    const c = new Int32Array(n + nViews).fill(-1);
    for (const [r, k] of itemClass) c[r] = k;
    for (let v = 0; v < nViews; v++) c[n + v] = itemClass.get(views.rows[v])!;
    codes.push(c);
    trainTasks.push({ name: VIEW_TASK, group: 'style', classes: itemClass.size, weight: pull, classWeights: new Float32Array(itemClass.size).fill(1) });
  }
  const params = initParams(shape, trainTasks, rng);
  const optimiser = new AdamW();
  // An epoch goes over the training items and their views (rows n and up).
  const samples = trainRows.length + nViews;
  // Small catalogs take smaller batches, so that they still get enough optimiser steps.
  const batch = Math.max(1, Math.min(options.batchSize ?? Math.min(512, Math.max(32, 2 ** Math.floor(Math.log2(samples / 8)))), samples));
  const stepsPerEpoch = Math.ceil(samples / batch);
  // About 1,200 optimiser steps whatever the catalog size (25 epochs for the dev catalog).
  const maxEpochs = options.epochs ?? Math.min(60, Math.max(12, Math.ceil(1200 / stepsPerEpoch)));
  const patience = options.patience ?? 4;
  const totalSteps = maxEpochs * stepsPerEpoch;
  const warmup = Math.min(stepsPerEpoch, 100);
  const validation = valList.length ? validationSet(valList, rng) : undefined;

  const epochs: EpochReport[] = [];
  let best: { score: number; epoch: number; params: Params } | undefined;
  let stepCount = 0;
  const order = new Int32Array(samples);
  order.set(trainRows);
  for (let v = 0; v < nViews; v++) order[trainRows.length + v] = n + v;
  for (let epoch = 1; epoch <= maxEpochs; epoch++) {
    if (options.signal?.aborted) break;
    const epochStart = performance.now();
    shuffle(order, rng);
    const sums: Record<string, number> = {};
    let batches = 0, diverged = false;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const rows = order.subarray(s * batch, Math.min((s + 1) * batch, order.length));
      const b = rows.length;
      const x = new Float32Array(b * din);
      for (let i = 0; i < b; i++) x.set(inputs.subarray(rows[i] * din, (rows[i] + 1) * din), i * din);
      const targets = codes.map((c) => Int32Array.from(rows, (r) => c[r]));
      const result = await step(shape, trainTasks, params, hyper, x, b, targets, rng);
      if (Object.values(result.loss).some((v) => !Number.isFinite(v))) { diverged = true; break; }
      const progress = stepCount / totalSteps;
      const lr = hyper.lr * Math.min(1, (stepCount + 1) / warmup) * 0.5 * (1 + Math.cos(Math.PI * progress));
      optimiser.update(params, result.grads, lr, hyper.weightDecay);
      stepCount++;
      for (const [k, v] of Object.entries(result.loss)) sums[k] = (sums[k] ?? 0) + v;
      batches++;
      options.onBatch?.(s + 1, stepsPerEpoch);
    }
    if (diverged) {
      log(`epoch ${epoch}: the loss stopped being finite; keeping the best epoch so far`);
      break;
    }
    const loss = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / Math.max(1, batches)]));
    const val = validation ? await validate(shape, params, inputs, n, trainRows, validation, plan.tasks) : {};
    const values = Object.values(val);
    // Without held-out items there is nothing to stop on: the last epoch is kept.
    const score = values.length ? plan.tasks.reduce((s, t, i) => s + (val[t.column] ?? 0) * tasks[i].weight, 0) / tasks.reduce((s, t) => s + t.weight, 0) : epoch;
    const isBest = !best || score > best.score;
    if (isBest) best = { score, epoch, params: cloneParams(params) };
    const report: EpochReport = { epoch, epochs: maxEpochs, loss, validation: val, score, best: isBest, seconds: (performance.now() - epochStart) / 1000 };
    epochs.push(report);
    options.onEpoch?.(report);
    if (best && epoch - best.epoch >= patience) {
      log(`early stop: no better validation score in ${patience} epochs; keeping epoch ${best.epoch}`);
      break;
    }
  }
  const finalParams = best?.params ?? params;
  const seconds = (performance.now() - started) / 1000;

  const tensors = new Map<string, Float32Array>([
    ['reduce.mean', reducer.mean], ['reduce.components', reducer.components], ['reduce.scale', reducer.scale],
    ['colour.mean', colourMean], ['colour.scale', colourScale],
  ]);
  for (const name of ['w1', 'b1', 'ws', 'bs', 'wc', 'bc']) if (finalParams.has(name)) tensors.set(name, finalParams.get(name)!);
  const modes = { ...DEFAULT_MODES, ...options.modes };
  const metaBase: Omit<HeadMeta, 'id' | 'tensors' | 'results'> = {
    format: 'lookalike-head',
    version: 1,
    backbone: { weightsId: manifest.weightsId, fingerprint: imageFingerprint(manifest.settings) },
    features: { power: 0.5, backboneDim: raw.dim, colourDim: raw.colourDim },
    net: shape,
    tasks: plan.tasks.map((t) => ({ column: t.column, kind: t.kind, classes: t.classes })),
    modes,
    defaultMode: options.defaultMode ?? DEFAULT_MODE,
    holdout: { fraction: holdout },
    trained: {
      at: new Date().toISOString(),
      catalog: manifest.catalog.root,
      items: n,
      trainItems: trainRows.length,
      heldOutItems: valList.length,
      epochs: epochs.length,
      bestEpoch: best?.epoch ?? epochs.length,
      seconds,
      seed,
      hyper,
      ...(views && { views: { count: nViews, items: new Set(views.rows).size, localise: DEFAULT_LOCALISATION } }),
    },
  };
  const meta: HeadMeta = { ...metaBase, id: headId(metaBase, tensors), tensors: [] };
  let head = new Head(meta, tensors);

  let comparison: ComparisonRow[] = [];
  const baseline = `backbone:${manifest.settings.pooling}`;
  if (options.compare !== false && valList.length && trainRows.length) {
    log('measuring held-out figures before/after...');
    comparison = await compare(head, raw, ids, metadata, columns, plan.tasks.map((t) => t.column), holdout, manifest.settings.pooling);
    head = new Head({ ...head.meta, results: { baseline, holdout, rows: comparison } }, tensors);
  }
  const ref = options.install === false ? undefined : await installHead(options.indexDir, head);
  return {
    head, ref, labels: plan, epochs, bestEpoch: best?.epoch ?? epochs.length,
    items: n, trainItems: trainRows.length, heldOutItems: valList.length, seconds, comparison, baseline,
    ...(views && { views: { count: nViews, embedded: views.embedded, reused: views.reused, seconds: views.seconds } }),
  };
}

/** Mean and 1/std per column over `rows` (std floored so constant columns stay finite). */
function standardiser(data: Float32Array, d: number, rows: Int32Array, mean: Float32Array, scale: Float32Array): void {
  const m = new Float64Array(d), sq = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) { const v = data[r * d + j]; m[j] += v; sq[j] += v * v; }
  const count = Math.max(1, rows.length);
  let meanVar = 0;
  const variance = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    mean[j] = m[j] / count;
    variance[j] = Math.max(0, sq[j] / count - (m[j] / count) ** 2);
    meanVar += variance[j] / d;
  }
  for (let j = 0; j < d; j++) scale[j] = 1 / Math.sqrt(variance[j] + 0.01 * meanVar + 1e-12);
}

function shuffle(a: Int32Array, rng: Random): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
}

function cloneParams(p: Params): Params {
  return new Map([...p].map(([k, v]) => [k, Float32Array.from(v)]));
}

/** Up to 2,000 held-out rows, enough for a steady per-epoch figure at a fraction of the cost. */
function validationSet(valList: number[], rng: Random): Int32Array {
  const rows = Int32Array.from(valList);
  if (rows.length <= 2000) return rows;
  shuffle(rows, rng);
  return rows.slice(0, 2000).sort();
}

/** Held-out precision@5 per task, each in its own part: held-out rows query the training rows. */
async function validate(shape: NetShape, params: Params, inputs: Float32Array, n: number, trainRows: Int32Array, valRows: Int32Array, tasks: LabelTask[]): Promise<Record<string, number>> {
  const din = inputWidth(shape);
  const gather = (rows: Int32Array) => {
    const out = new Float32Array(rows.length * din);
    rows.forEach((r, i) => out.set(inputs.subarray(r * din, (r + 1) * din), i * din));
    return out;
  };
  const cand = await forward(shape, params, gather(trainRows), trainRows.length);
  const query = await forward(shape, params, gather(valRows), valRows.length);
  const k = 5;
  const out: Record<string, number> = {};
  for (const group of ['style', 'colour'] as const) {
    const groupTasks = tasks.filter((t) => (t.kind === 'colour' ? 'colour' : 'style') === group);
    if (!groupTasks.length) continue;
    const dim = group === 'style' ? shape.styleDim : cand.colourDim;
    const hits = await batchTopK(group === 'style' ? cand.style : cand.colour, dim, group === 'style' ? query.style : query.colour, valRows.length, k);
    for (const t of groupTasks) {
      let sum = 0, count = 0;
      for (let q = 0; q < valRows.length; q++) {
        const truth = t.codes[valRows[q]];
        if (truth < 0) continue;
        let rel = 0;
        for (let j = 0; j < hits.k; j++) {
          const row = hits.rows[q * hits.k + j];
          if (row >= 0 && t.codes[trainRows[row]] === truth) rel++;
        }
        sum += rel / k;
        count++;
      }
      out[t.column] = count ? sum / count : 0;
    }
  }
  return out;
}

/** Held-out precision@5 (and the main column's kNN macro-F1) of the backbone and of the head in each mode. */
async function compare(head: Head, raw: RawVectors, ids: string[], metadata: Array<Record<string, string>>, columns: string[], learnt: string[], holdout: number, pooling: 'max' | 'avg'): Promise<ComparisonRow[]> {
  const attributes = [...new Set([...REPORTED.filter((c) => columns.includes(c)), ...learnt])];
  const labels = Object.fromEntries(attributes.map((a) => [a, metadata.map((m) => (m[a] ?? '').trim())]));
  const run = async (matrix: Float32Array, dim: number) => {
    const result = await evaluate({ matrix, dim, ids, labels, k: 5, queries: holdout });
    return new Map<string, AttributeResult>(result.attributes.map((a) => [a.attribute, a]));
  };
  const backbone = await run(normaliseRows(Float32Array.from(pooling === 'max' ? raw.max : raw.avg), raw.dim), raw.dim);
  const parts = await head.embedParts(raw);
  const perMode = new Map<Mode, Map<string, AttributeResult>>();
  for (const mode of MODES) perMode.set(mode, await run(head.combine(parts.style, parts.colour, raw.n, mode), head.dim(mode)));
  const rows: ComparisonRow[] = [];
  for (const a of attributes) {
    rows.push({ attribute: a, metric: 'precision@5', backbone: backbone.get(a)!.precisionAtK, head: Object.fromEntries(MODES.map((m) => [m, perMode.get(m)!.get(a)!.precisionAtK])) as Record<Mode, number> });
  }
  const main = learnt[0];
  if (main) rows.push({ attribute: main, metric: 'macro-F1', backbone: backbone.get(main)!.macroF1, head: Object.fromEntries(MODES.map((m) => [m, perMode.get(m)!.get(main)!.macroF1])) as Record<Mode, number> });
  return rows;
}
