import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { isLookalikeError } from '../../src/errors.js';
import { defaultSettings } from '../../src/model/registry.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { Lookalike } from '../../src/lookalike.js';
import { batchTopK, normaliseRows } from '../../src/search/kernel.js';
import { isHeldOut } from '../../src/catalog/split.js';
import { Random } from '../../src/math/random.js';
import { classWeights, editKind, planLabels } from '../../src/train/labels.js';
import { parseLabelSpec, trainHead, type TrainOptions } from '../../src/train/train.js';
import { decodeHead, encodeHead, readHeadFile, writeHeadFile, MODES } from '../../src/head/head.js';
import { adoptHeadFile, embedSync, HEAD_FILE, removeHead } from '../../src/head/index-head.js';
import { gemm, mat } from '../../src/head/gemm.js';
import { fitReducer, applyReducer } from '../../src/head/reduce.js';
import { AdamW, DEFAULT_HYPER, initParams, step, type NetShape, type TaskSpec } from '../../src/head/network.js';
import { tempDir } from '../helpers/fixtures.js';
import { planViews, VIEW_SEED_BASE } from '../../src/train/views.js';
import { QUERY_HOLDOUT, querySeed } from '../../src/lab/eval/robustness.js';
import { PERTURBATIONS } from '../../src/photo/synthetic.js';

const DIM = 32;
const COLOUR = 144;
const TYPES = ['Tshirts', 'Shirts', 'Jeans', 'Watches', 'Handbags', 'Sandals'];
const COLOURS = ['Black', 'White', 'Blue', 'Red'];
const GENDERS = ['Men', 'Women'];
const COLUMNS = ['gender', 'articleType', 'baseColour', 'usage', 'productDisplayName'];

interface Synthetic { id: string; metadata: Record<string, string>; max: Float32Array; avg: Float32Array; colour: Float32Array }

/**
 * Items with class structure hidden under nuisance: 8 dimensions carry the article type
 * (and a little of the gender), 24 carry large random "pose and lighting" values that
 * dominate the raw cosine. The colour histogram peaks at the colour's bin.
 */
function syntheticItems(n: number, seed = 7, label: (i: number, m: Record<string, string>) => Record<string, string> = (_, m) => m): Synthetic[] {
  const rng = new Random(seed);
  const centroids = TYPES.map(() => Float32Array.from({ length: 8 }, () => rng.next() * 2));
  const items: Synthetic[] = [];
  for (let i = 0; i < n; i++) {
    const t = i % TYPES.length, c = Math.floor(i / TYPES.length) % COLOURS.length, g = (i * 7) % 2;
    const max = new Float32Array(DIM), avg = new Float32Array(DIM), colour = new Float32Array(COLOUR);
    for (let j = 0; j < 8; j++) max[j] = Math.max(0, centroids[t][j] + 0.25 * rng.normal() + (j === g ? 0.5 : 0));
    for (let j = 8; j < DIM; j++) max[j] = Math.abs(rng.normal()) * 2.5;
    for (let j = 0; j < DIM; j++) avg[j] = max[j] * 0.4 + Math.abs(rng.normal()) * 0.1;
    for (let j = 0; j < COLOUR; j++) colour[j] = Math.abs(rng.normal()) * 0.05;
    colour[c * 30 + 3] += 1;
    colour[c * 30 + 4] += 0.5;
    const metadata = { gender: GENDERS[g], articleType: TYPES[t], baseColour: COLOURS[c], usage: t < 3 ? 'Casual' : 'Formal', productDisplayName: `item ${i}` };
    items.push({ id: String(10_000 + i), metadata: label(i, metadata), max, avg, colour });
  }
  return items;
}

function writeSyntheticIndex(items: Synthetic[], columns = COLUMNS): string {
  const dir = tempDir('lookalike-train-');
  const store = SqliteStore.open(dir, { create: true });
  const now = new Date().toISOString();
  store.setManifest({
    formatVersion: 1, settings: defaultSettings(), weightsId: 'synthetic@000000000000', dimension: DIM, colourDimension: COLOUR,
    catalog: { root: dir, kind: 'styles-csv', columns }, createdAt: now, updatedAt: now,
  });
  store.upsertItems(items.map((i) => ({ id: i.id, image: path.join(dir, `${i.id}.jpg`), metadata: i.metadata })));
  store.putVectors(items.map(({ id, max, avg, colour }) => ({ id, max, avg, colour })));
  store.close();
  return dir;
}

/** Small network settings so each training run takes a second or two; synthetic items have no photos to draw views of. */
const SMALL: Partial<TrainOptions> = { hidden: 64, dim: 16, colourDim: 8, reduced: 48, epochs: 40, patience: 10, views: 0 };

/** Held-out precision@5 of an attribute in a matrix (held-out items query the rest). */
async function heldOutP5(matrix: Float32Array, dim: number, ids: string[], labels: string[]): Promise<number> {
  const q: number[] = [], c: number[] = [];
  ids.forEach((id, r) => (isHeldOut(id, 0.2) ? q : c).push(r));
  const gather = (rows: number[]) => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => out.set(matrix.subarray(r * dim, (r + 1) * dim), i * dim));
    return out;
  };
  const hits = await batchTopK(gather(c), dim, gather(q), q.length, 5);
  let sum = 0;
  q.forEach((r, i) => {
    for (let j = 0; j < hits.k; j++) sum += labels[c[hits.rows[i * hits.k + j]]] === labels[r] ? 1 / 5 : 0;
  });
  return sum / q.length;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('label planning', () => {
  const train = (n: number) => new Uint8Array(n).fill(1);

  it('merges case, spacing, punctuation and plural variants, and rare one-edit typos, but never a one-letter substitution', () => {
    const values = [
      ...Array(60).fill('Shirts'), ...Array(20).fill('Skirts'), ...Array(3).fill('shirts'), 'Shirt', ' Shirts ',
      'Shrits', // transposition of a frequent value: a typo
      ...Array(10).fill('T-Shirts'), 'tshirts', 'T shirts',
    ];
    const plan = planLabels(values.map((v) => ({ articleType: v })), ['articleType'], train(values.length));
    const task = plan.tasks[0];
    expect(task.classes.sort()).toEqual(['Shirts', 'Skirts', 'T-Shirts']);
    const shirts = task.classes.indexOf('Shirts');
    expect(task.counts[shirts]).toBe(60 + 3 + 1 + 1 + 1);
    expect(task.counts[task.classes.indexOf('Skirts')]).toBe(20);
    expect(task.counts[task.classes.indexOf('T-Shirts')]).toBe(12);
    expect(task.merged.some((m) => m.from === 'Shrits' && m.to === 'Shirts')).toBe(true);
  });

  it('treats empty cells and NA-like values as missing, and leaves rare classes out of the loss', () => {
    const values = [...Array(10).fill('Casual'), ...Array(10).fill('Sports'), '', 'NA', 'n/a', '  ', 'Travel'];
    const plan = planLabels(values.map((v) => ({ usage: v })), ['usage'], train(values.length));
    const task = plan.tasks[0];
    expect(task.classes).toEqual(['Casual', 'Sports']);
    expect(task.missing).toBe(5);
    expect(task.rare).toEqual([{ value: 'Travel', items: 1 }]);
    expect([...task.codes].filter((c) => c < 0)).toHaveLength(5);
  });

  it('skips a column with one value, an empty column and free text, saying why', () => {
    const rows = Array.from({ length: 200 }, (_, i) => ({ gender: 'Men', season: '', name: `Product ${i}`, articleType: i % 2 ? 'A' : 'B' }));
    const plan = planLabels(rows, ['gender', 'season', 'name', 'articleType'], train(rows.length));
    expect(plan.tasks.map((t) => t.column)).toEqual(['articleType']);
    expect(Object.fromEntries(plan.skipped.map((s) => [s.column, s.reason]))).toEqual({
      gender: expect.stringContaining('one value'),
      season: expect.stringContaining('empty'),
      name: expect.stringContaining('free text'),
    });
  });

  it('marks colour columns as the colour part', () => {
    const rows = Array.from({ length: 20 }, (_, i) => ({ baseColour: i % 2 ? 'Red' : 'Blue', articleType: i % 2 ? 'A' : 'B' }));
    const plan = planLabels(rows, ['articleType', 'baseColour'], train(rows.length));
    expect(plan.tasks.map((t) => t.kind)).toEqual(['style', 'colour']);
  });

  it('reads --labels with optional per-column weights, and refuses bad weights', () => {
    expect(parseLabelSpec('articleType, gender:2,baseColour:0.5,articleType')).toEqual({ labels: ['articleType', 'gender', 'baseColour'], weights: { gender: 2, baseColour: 0.5 } });
    for (const bad of ['gender:0', 'gender:-1', 'gender:x', ':2', ' , ']) expect(() => parseLabelSpec(bad)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
  });

  it('classifies single edits', () => {
    expect(editKind('shirt', 'shirts')).toBe('indel');
    expect(editKind('shirt', 'shrit')).toBe('transposition');
    expect(editKind('shirt', 'skirt')).toBe('substitution');
    expect(editKind('shirt', 'short')).toBe('substitution');
    expect(editKind('jeans', 'jeggings')).toBe('far');
  });

  it('weights classes by inverse square-root frequency, averaging 1 over the items', () => {
    const counts = Int32Array.from([900, 100, 0]);
    const w = classWeights(counts);
    expect(w[1] / w[0]).toBeCloseTo(3, 5);
    expect(w[2]).toBe(0);
    expect((900 * w[0] + 100 * w[1]) / 1000).toBeCloseTo(1, 5);
  });
});

describe('numerics', () => {
  it('gemm matches a plain product in every transpose combination', async () => {
    const rng = new Random(3);
    const a = Float32Array.from({ length: 3 * 4 }, () => rng.normal());
    const b = Float32Array.from({ length: 4 * 5 }, () => rng.normal());
    const ref = (i: number, j: number) => { let s = 0; for (let p = 0; p < 4; p++) s += a[i * 4 + p] * b[p * 5 + j]; return s; };
    const ab = await gemm(mat(a, 3, 4), mat(b, 4, 5));
    const at = new Float32Array(12), bt = new Float32Array(20);
    for (let i = 0; i < 3; i++) for (let p = 0; p < 4; p++) at[p * 3 + i] = a[i * 4 + p];
    for (let p = 0; p < 4; p++) for (let j = 0; j < 5; j++) bt[j * 4 + p] = b[p * 5 + j];
    const abT = await gemm(mat(at, 4, 3), mat(bt, 5, 4), { transA: true, transB: true, bias: Float32Array.from([1, 2, 3, 4, 5]) });
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) {
      expect(ab.data[i * 5 + j]).toBeCloseTo(ref(i, j), 4);
      expect(abT.data[i * 5 + j]).toBeCloseTo(ref(i, j) + j + 1, 4);
    }
  });

  it('the whitening PCA finds the high-variance directions and outputs unit variance', async () => {
    const rng = new Random(5);
    const n = 2000, d = 20;
    const data = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const z0 = rng.normal() * 10, z1 = rng.normal() * 5;
      for (let j = 0; j < d; j++) data[i * d + j] = 3 + rng.normal() * 0.1 + (j === 2 ? z0 : 0) + (j === 7 ? z1 : 0);
    }
    const reducer = await fitReducer(data, d, Int32Array.from({ length: n }, (_, i) => i), 2);
    expect(Math.abs(reducer.components[2])).toBeCloseTo(1, 2);
    expect(Math.abs(reducer.components[d + 7])).toBeCloseTo(1, 2);
    const out = await applyReducer(reducer, data, n);
    for (let c = 0; c < 2; c++) {
      let s = 0, sq = 0;
      for (let i = 0; i < n; i++) { s += out[i * 2 + c]; sq += out[i * 2 + c] ** 2; }
      expect(Math.abs(s / n)).toBeLessThan(0.05);
      expect(sq / n).toBeCloseTo(1, 1);
    }
  });

  it('hand-written gradients match finite differences', async () => {
    const rng = new Random(11);
    const shape: NetShape = { reduced: 5, colourIn: 3, hidden: 6, styleDim: 4, colourDim: 3 };
    const tasks: TaskSpec[] = [
      { name: 'type', group: 'style', classes: 3, weight: 1, classWeights: Float32Array.from([1, 2, 0.5]) },
      { name: 'colour', group: 'colour', classes: 2, weight: 0.5, classWeights: Float32Array.from([1, 1]) },
    ];
    const params = initParams(shape, tasks, rng);
    const b = 4;
    const x = Float32Array.from({ length: b * 8 }, () => rng.normal());
    const targets = [Int32Array.from([0, 2, 1, -1]), Int32Array.from([1, 0, -1, 1])];
    const hyper = { ...DEFAULT_HYPER, dropout: 0, inputDropout: 0 };
    const { grads } = await step(shape, tasks, params, hyper, Float32Array.from(x), b, targets, rng);
    // The objective the gradients belong to: sum over tasks and labelled rows of
    // task weight * class weight * row loss / b. Rows are independent without dropout, so
    // each row's loss is a batch of one.
    const rowWeights = tasks.map((task, t) => [...targets[t]].map((y) => (y < 0 ? 0 : (task.weight * task.classWeights[y]) / b)));
    const f = async () => {
      let total = 0;
      for (let i = 0; i < b; i++) {
        const r = await step(shape, tasks, params, hyper, Float32Array.from(x.subarray(i * 8, (i + 1) * 8)), 1, targets.map((tt) => tt.subarray(i, i + 1)), rng);
        for (let t = 0; t < tasks.length; t++) total += rowWeights[t][i] * r.loss[tasks[t].name];
      }
      return total;
    };
    const eps = 1e-2;
    for (const name of ['w1', 'b1', 'ws', 'wc', 'bc', 'task:type', 'task:colour']) {
      const w = params.get(name)!;
      for (const idx of [0, Math.floor(w.length / 2), w.length - 1]) {
        const keep = w[idx];
        w[idx] = keep + eps;
        const up = await f();
        w[idx] = keep - eps;
        const down = await f();
        w[idx] = keep;
        const numeric = (up - down) / (2 * eps);
        // Central differences in float32: agreement to 1% of the gradient's size.
        expect(Math.abs(grads.get(name)![idx] - numeric)).toBeLessThan(0.01 * Math.max(1, Math.abs(numeric)));
      }
    }
  });

  it('AdamW moves parameters against the gradient', () => {
    const params = new Map([['w1', Float32Array.from([1, -1])]]);
    new AdamW().update(params, new Map([['w1', Float32Array.from([0.5, -0.5])]]), 0.1, 0);
    expect(params.get('w1')![0]).toBeCloseTo(0.9, 5);
    expect(params.get('w1')![1]).toBeCloseTo(-0.9, 5);
  });
});

describe('training a head on an index', () => {
  let dir: string;
  let items: Synthetic[];

  beforeAll(() => {
    items = syntheticItems(720);
    dir = writeSyntheticIndex(items);
    dirs.push(dir);
  });

  it('learns the labels: held-out article type precision@5 rises well above the raw backbone, all figures finite', async () => {
    const epochs: number[] = [];
    const report = await trainHead({ indexDir: dir, ...SMALL, onEpoch: (e) => epochs.push(e.epoch) });
    expect(report.labels.tasks.map((t) => t.column)).toEqual(['articleType', 'gender', 'baseColour', 'usage']);
    expect(epochs.length).toBeGreaterThan(3);
    const row = (a: string) => report.comparison.find((r) => r.attribute === a && r.metric === 'precision@5')!;
    expect(row('articleType').head.style).toBeGreaterThan(row('articleType').backbone + 0.15);
    expect(row('baseColour').head.colour).toBeGreaterThan(row('baseColour').backbone + 0.2);
    for (const r of report.comparison) for (const v of [r.backbone, ...Object.values(r.head)]) expect(Number.isFinite(v)).toBe(true);
    for (const e of report.epochs) for (const v of [...Object.values(e.loss), ...Object.values(e.validation)]) expect(Number.isFinite(v)).toBe(true);
    expect(report.head.meta.holdout.fraction).toBe(0.2);
    expect(report.heldOutItems).toBe(items.filter((i) => isHeldOut(i.id, 0.2)).length);
  });

  it('makes the head the index\'s search space, in every mode, and applies it to a query vector as to the catalog', async () => {
    const lookalike = await Lookalike.open(dir);
    try {
      const head = lookalike.head!.head;
      expect(lookalike.space().id).toBe(`head:${head.id}:balanced`);
      expect(lookalike.space({ mode: 'colour' }).id).toBe(`head:${head.id}:colour`);
      expect(lookalike.space({ mode: 'color' }).id).toBe(`head:${head.id}:colour`);
      expect(lookalike.space({ pooling: 'max' }).id).toBe('backbone:max');
      expect(() => lookalike.space({ mode: 'shiny' })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
      expect(lookalike.space({ mode: 'style' }).dim).toBe(16);
      expect(lookalike.space({ mode: 'balanced' }).dim).toBe(16 + 8);

      for (const mode of MODES) {
        const space = lookalike.space({ mode });
        const { data, dim } = lookalike.indexView().matrix(space);
        expect(data.every(Number.isFinite)).toBe(true);
        // One item's raw vectors, as an uploaded photo's would arrive.
        const raw = lookalike.indexView().rawVectors();
        for (const row of [0, 17, raw.n - 1]) {
          const one = { n: 1, dim: raw.dim, colourDim: raw.colourDim, max: raw.max.slice(row * raw.dim, (row + 1) * raw.dim), avg: raw.avg.slice(row * raw.dim, (row + 1) * raw.dim), colour: raw.colour.slice(row * raw.colourDim, (row + 1) * raw.colourDim) };
          const q = space.embed(one);
          for (let j = 0; j < dim; j++) expect(q[j]).toBeCloseTo(data[row * dim + j], 4);
        }
      }
      // A search by id returns catalog items, best first.
      const hits = await lookalike.searchById(items[0].id, { k: 5, mode: 'style' });
      expect(hits.results).toHaveLength(5);
      expect(hits.space).toContain('head:');
    } finally {
      await lookalike.close();
    }
    // The projection is cached for the next open.
    expect(readFileSync(path.join(dir, HEAD_FILE)).subarray(0, 8).toString('latin1')).toBe('LKHEAD1\n');
  });

  it('projects items added after training, from their stored vectors', async () => {
    const extra = syntheticItems(730, 99).slice(720).map((i, k) => ({ ...i, id: `new-${k}` }));
    const store = SqliteStore.open(dir);
    store.upsertItems(extra.map((i) => ({ id: i.id, image: path.join(dir, `${i.id}.jpg`), metadata: i.metadata })));
    store.putVectors(extra.map(({ id, max, avg, colour }) => ({ id, max, avg, colour })));
    store.close();
    const lookalike = await Lookalike.open(dir);
    try {
      const space = lookalike.space({ mode: 'style' });
      const { data, dim } = lookalike.indexView().matrix(space);
      const row = lookalike.indexView().rowOf('new-3');
      const expected = embedSync(lookalike.head!.head, { n: 1, dim: DIM, colourDim: COLOUR, max: extra[3].max, avg: extra[3].avg, colour: extra[3].colour }, 'style');
      for (let j = 0; j < dim; j++) expect(data[row * dim + j]).toBeCloseTo(expected[j], 4);
    } finally {
      await lookalike.close();
    }
  });

  it('round-trips a head through its file, and refuses damaged files', async () => {
    const lookalike = await Lookalike.open(dir);
    const head = lookalike.head!.head;
    await lookalike.close();
    const file = path.join(tempDir('lookalike-headfile-'), 'h.lkhead');
    dirs.push(path.dirname(file));
    await writeHeadFile(head, file);
    const back = readHeadFile(file);
    expect(back.id).toBe(head.id);
    expect(back.meta.tasks).toEqual(head.meta.tasks);
    const raw = { n: 1, dim: DIM, colourDim: COLOUR, max: items[5].max, avg: items[5].avg, colour: items[5].colour };
    expect(embedSync(back, raw, 'balanced')).toEqual(embedSync(head, raw, 'balanced'));

    const bytes = encodeHead(head);
    const expectCode = (fn: () => unknown, code: string) => {
      try { fn(); } catch (err) { expect(isLookalikeError(err) && err.code).toBe(code); return; }
      throw new Error('expected a refusal');
    };
    expectCode(() => decodeHead(bytes.subarray(0, bytes.length - 100), 'cut'), 'HEAD_UNREADABLE');
    expectCode(() => decodeHead(Buffer.from('not a head at all'), 'text'), 'HEAD_UNREADABLE');
    const nan = Buffer.from(bytes);
    nan.writeFloatLE(Number.NaN, nan.length - 4);
    expectCode(() => decodeHead(nan, 'nan'), 'HEAD_UNREADABLE');
    expectCode(() => readHeadFile(path.join(path.dirname(file), 'missing.lkhead')), 'HEAD_UNREADABLE');
  });

  it('refuses a head trained on another backbone or image preparation, and copies nothing', async () => {
    const other = tempDir('lookalike-other-');
    dirs.push(other);
    const file = path.join(dir, HEAD_FILE);
    const store = SqliteStore.open(other, { create: true });
    await expect(adoptHeadFile(file, store, 'synthetic@000000000000', defaultSettings({ resize: 'pad' }))).rejects.toMatchObject({ code: 'HEAD_MISMATCH' });
    await expect(adoptHeadFile(file, store, 'another-net@1', defaultSettings())).rejects.toMatchObject({ code: 'HEAD_MISMATCH' });
    expect(existsSync(path.join(other, HEAD_FILE))).toBe(false);
    const ref = await adoptHeadFile(file, store, 'synthetic@000000000000', defaultSettings());
    store.close();
    expect(ref.file).toBe(HEAD_FILE);
    expect(existsSync(path.join(other, HEAD_FILE))).toBe(true);
  });

  it('--off goes back to the plain backbone', async () => {
    const copy = writeSyntheticIndex(items.slice(0, 300));
    dirs.push(copy);
    await trainHead({ indexDir: copy, ...SMALL, epochs: 3, compare: false });
    let lookalike = await Lookalike.open(copy);
    expect(lookalike.space().id).toMatch(/^head:/);
    await lookalike.close();
    expect(await removeHead(copy)).toBe(true);
    expect(await removeHead(copy)).toBe(false);
    lookalike = await Lookalike.open(copy);
    expect(lookalike.space({ mode: 'colour' }).id).toBe('backbone:max');
    await lookalike.close();
  });

  it('re-training gives a new head id, so cached matrices are not reused', async () => {
    const copy = writeSyntheticIndex(items.slice(0, 300));
    dirs.push(copy);
    const a = await trainHead({ indexDir: copy, ...SMALL, epochs: 2, compare: false, seed: 1 });
    const b = await trainHead({ indexDir: copy, ...SMALL, epochs: 2, compare: false, seed: 2 });
    expect(a.head.id).not.toBe(b.head.id);
    const lookalike = await Lookalike.open(copy);
    expect(lookalike.head!.head.id).toBe(b.head.id);
    await lookalike.close();
  });
});

describe('robustness', () => {
  const expectNoLabels = async (indexDir: string, options: Partial<TrainOptions> = {}) => {
    await expect(trainHead({ indexDir, ...SMALL, ...options })).rejects.toMatchObject({ code: 'TRAIN_NO_LABELS' });
  };

  it('a catalog without label columns gets a clear message', async () => {
    const dir = writeSyntheticIndex(syntheticItems(60).map((i) => ({ ...i, metadata: {} })), []);
    dirs.push(dir);
    await expectNoLabels(dir);
  });

  it('a label column with one value, or only empty cells, gets a clear message', async () => {
    const dir = writeSyntheticIndex(syntheticItems(60, 7, () => ({ gender: 'Men', articleType: '', baseColour: 'NA', usage: ' ' })));
    dirs.push(dir);
    await expectNoLabels(dir);
    await expectNoLabels(dir, { labels: ['gender'] });
  });

  it('an unknown label column is named in the message', async () => {
    const dir = writeSyntheticIndex(syntheticItems(60));
    dirs.push(dir);
    await expect(trainHead({ indexDir: dir, labels: ['colour_name'] })).rejects.toThrow(/colour_name/);
  });

  it('labels with typos, odd case and empty cells train to finite, useful vectors', async () => {
    const noisy = syntheticItems(600, 13, (i, m) => ({
      ...m,
      articleType: i % 17 === 0 ? '' : i % 23 === 0 ? m.articleType.toUpperCase() : i === 5 ? 'Shrits' : m.articleType,
      baseColour: i % 11 === 0 ? 'NA' : m.baseColour,
    }));
    const dir = writeSyntheticIndex(noisy);
    dirs.push(dir);
    const report = await trainHead({ indexDir: dir, ...SMALL });
    const type = report.labels.tasks.find((t) => t.column === 'articleType')!;
    expect(type.classes).toHaveLength(TYPES.length);
    expect(type.merged.some((m) => m.from === 'Shrits')).toBe(true);
    const lookalike = await Lookalike.open(dir);
    try {
      for (const mode of MODES) {
        const { data, dim } = lookalike.indexView().matrix(lookalike.space({ mode }));
        expect(data.every(Number.isFinite)).toBe(true);
        const ids = lookalike.indexView().items.map((i) => i.id);
        const labels = lookalike.indexView().items.map((i) => i.metadata.articleType.toLowerCase());
        if (mode === 'style') {
          const raw = lookalike.indexView().rawVectors();
          const before = await heldOutP5(normaliseRows(Float32Array.from(raw.max), raw.dim), raw.dim, ids, labels);
          expect(await heldOutP5(data, dim, ids, labels)).toBeGreaterThan(before + 0.1);
        }
      }
    } finally {
      await lookalike.close();
    }
  });

  it('a catalog too small to hold anything out still trains, without figures', async () => {
    const tiny = syntheticItems(12);
    const kept = tiny.filter((i) => !isHeldOut(i.id, 0.2));
    const dir = writeSyntheticIndex(kept);
    dirs.push(dir);
    const report = await trainHead({ indexDir: dir, ...SMALL, epochs: 3, labels: ['usage'] });
    expect(report.heldOutItems).toBe(0);
    expect(report.comparison).toEqual([]);
    const lookalike = await Lookalike.open(dir);
    expect(lookalike.indexView().matrix(lookalike.space()).data.every(Number.isFinite)).toBe(true);
    await lookalike.close();
  });
});

describe('training on shopper-photo views', () => {
  it('plans views of training items only, every kind, with seeds robustness never uses', () => {
    const ids = Array.from({ length: 400 }, (_, i) => String(5000 + i));
    const all = ids.map((_, r) => r);
    const plan = planViews(ids, all, 120, 1, 0.2);
    expect(plan).toHaveLength(120);
    expect(planViews(ids, all, 120, 1, 0.2)).toEqual(plan);
    for (const v of plan) {
      // Neither the training hold-out nor robustness's query share (a wider training
      // hold-out is honoured too).
      for (const id of [ids[v.row], ids[v.others[0]], ids[v.others[1]]]) {
        expect(isHeldOut(id, 0.2)).toBe(false);
        expect(isHeldOut(id, QUERY_HOLDOUT)).toBe(false);
      }
      expect(v.others).not.toContain(v.row);
    }
    expect(planViews(ids, all, 120, 1, 0.5).every((v) => !isHeldOut(ids[v.row], 0.5))).toBe(true);
    expect(new Set(plan.map((v) => v.kind))).toEqual(new Set(PERTURBATIONS));
    // Only the rows offered (the labelled training rows) are drawn.
    const offered = all.filter((r) => r % 3 === 0);
    expect(planViews(ids, offered, 60, 1, 0.2).every((v) => v.row % 3 === 0 && v.others.every((o) => o % 3 === 0))).toBe(true);
    // Seeds: above every robustness seed for --seed 0..4000 (100,000 queries each), below 2^32.
    const robustnessTop = querySeed(4000, 100_000);
    expect(robustnessTop).toBeLessThan(VIEW_SEED_BASE);
    for (const trainSeed of [0, 1, 2, 12345, 2 ** 32 - 1]) {
      for (const v of planViews(ids, all, 50, trainSeed, 0.2)) {
        expect(v.seed).toBeGreaterThanOrEqual(VIEW_SEED_BASE);
        expect(v.seed).toBeLessThan(2 ** 32);
      }
    }
    expect(new Set(plan.map((v) => v.seed)).size).toBe(plan.length);
    expect(planViews(ids, all, 10, 2, 0.2).map((v) => v.seed)).not.toEqual(plan.slice(0, 10).map((v) => v.seed));
  });
});
