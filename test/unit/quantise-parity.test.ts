/**
 * The int8 backbone (src/model/quantise.ts) must embed like the float32 one it was
 * quantised from: calibrated on one set of drawn product photos, it is compared on
 * others (shapes and colours it was not calibrated on). Fails when quantisation drifts
 * (a wrong scale, zero point or bias, a ReLU lost, the first Conv quantised after all)
 * and when the integer operators are no longer the ones in the graph.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { Embedder } from '../../src/model/embedder.js';
import { calibrate } from '../../src/model/calibrate.js';
import { ensureOnnxModel, ensureQuantisedModel } from '../../src/model/onnx-cache.js';
import { calibrationTensors, foldModel, quantiseModel, QUANTISER_VERSION, type Calibration } from '../../src/model/quantise.js';
import { defaultSettings, getBackbone, imageFingerprint, storedSettings } from '../../src/model/registry.js';
import { prepareImage } from '../../src/image/prepare.js';
import { prepareOptionsFor } from '../../src/image/options.js';
import path from 'node:path';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { defaultItems, drawProduct, makeCatalog, tempDir, type Shape } from '../helpers/fixtures.js';

const BACKBONE = 'resnet50-imagenet';
/** Worst cosine to float32 allowed for one image, and the median over all (dev catalog: 0.989 / 0.997). */
const MIN_COSINE = 0.97;
const MIN_MEDIAN_COSINE = 0.99;

const SHAPES: Shape[] = ['shirt', 'trousers', 'watch', 'bag'];
const CALIBRATION_COLOURS = ['#d22', '#23c', '#2a3', '#111'];
const TEST_COLOURS = ['#e90', '#808', '#7ad', '#963'];

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return d / Math.sqrt(na * nb);
}

describe('int8 ResNet50 against the float32 one it is quantised from (drawn photos)', () => {
  const settings = defaultSettings();
  const { width, height } = settings;
  const plane = 3 * width * height;
  let fp32: Embedder, int8: Embedder;
  let calibration: Calibration;
  let cosMax: number[], cosAvg: number[], mapCos: number;
  let fp32Out: Awaited<ReturnType<Embedder['run']>>, int8Out: Awaited<ReturnType<Embedder['run']>>;

  const batchOf = async (colours: string[]) => {
    const images = SHAPES.flatMap((shape) => colours.map((colour) => ({ shape, colour })));
    const pixels = new Float32Array(images.length * plane);
    for (const [i, img] of images.entries()) {
      const { tensor } = await prepareImage(await drawProduct(img.shape, img.colour), { ...prepareOptionsFor(settings), label: `${img.shape} ${img.colour}` });
      pixels.set(tensor, i * plane);
    }
    return { pixels, n: images.length };
  };

  beforeAll(async () => {
    const calib = await batchOf(CALIBRATION_COLOURS);
    calibration = await calibrate(BACKBONE, calib.pixels, calib.n, height, width);
    [fp32, int8] = await Promise.all([Embedder.create(BACKBONE), Embedder.create(BACKBONE, { precision: 'int8', calibration })]);
    const test = await batchOf(TEST_COLOURS);
    fp32Out = await fp32.run(test.pixels, test.n, height, width, { featureMap: true });
    int8Out = await int8.run(test.pixels, test.n, height, width, { featureMap: true });
    const d = fp32.dimension;
    const rows = (a: Float32Array, i: number) => a.subarray(i * d, (i + 1) * d);
    cosMax = Array.from({ length: test.n }, (_, i) => cosine(rows(fp32Out.max, i), rows(int8Out.max, i)));
    cosAvg = Array.from({ length: test.n }, (_, i) => cosine(rows(fp32Out.avg, i), rows(int8Out.avg, i)));
    mapCos = cosine(fp32Out.featureMap!.data, int8Out.featureMap!.data);
    const sorted = [...cosMax].sort((a, b) => a - b);
    console.info(`int8 vs fp32 (drawn, ${width}x${height}): max pooling min ${sorted[0].toFixed(4)} median ${sorted[sorted.length >> 1].toFixed(4)}; feature map ${mapCos.toFixed(4)}`);
  }, 300_000);

  afterAll(async () => {
    await fp32?.release();
    await int8?.release();
  });

  it('gives max-pooled embeddings within the cosine threshold of float32', () => {
    const sorted = [...cosMax].sort((a, b) => a - b);
    expect(sorted[0]).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(sorted[sorted.length >> 1]).toBeGreaterThanOrEqual(MIN_MEDIAN_COSINE);
  });

  it('gives avg-pooled embeddings within the cosine threshold of float32', () => {
    expect(Math.min(...cosAvg)).toBeGreaterThanOrEqual(MIN_COSINE);
  });

  it('keeps the feature map output (photo localisation) with the same shape and values', () => {
    expect(int8Out.featureMap!.gridH).toBe(fp32Out.featureMap!.gridH);
    expect(int8Out.featureMap!.gridW).toBe(fp32Out.featureMap!.gridW);
    expect(int8Out.featureMap!.data.length).toBe(fp32Out.featureMap!.data.length);
    expect(mapCos).toBeGreaterThanOrEqual(MIN_COSINE);
  });

  it('is not the float32 model again (the comparison is not vacuous)', () => {
    // Quantisation always changes something; identical outputs would mean int8 never ran.
    expect(Math.max(...cosMax)).toBeLessThan(1 - 1e-7);
    // ...and different drawings still get clearly different embeddings.
    expect(cosine(fp32Out.max.subarray(0, 2048), fp32Out.max.subarray(2048 * 5, 2048 * 6))).toBeLessThan(0.95);
  });

  it('runs every convolution and residual add as an integer operator, the poolings in float', async () => {
    expect(calibration.quantiser).toBe(QUANTISER_VERSION);
    const { onnxPath } = await ensureQuantisedModel(BACKBONE, calibration);
    const graph = onnxProto.onnx.ModelProto.decode(await readFile(onnxPath)).graph!;
    const count = (op: string) => graph.node!.filter((n) => n.opType === op).length;
    expect(count('QLinearConv')).toBe(53);
    expect(count('Conv')).toBe(0);
    expect(count('QLinearAdd')).toBe(15);
    expect(count('Add')).toBe(1); // the last residual add, whose output is the stored feature map
    expect(count('BatchNormalization')).toBe(0);
    expect(count('Relu')).toBe(1); // after the float last Add; the rest are in the uint8 clamp
    expect(graph.output!.map((o) => o.name)).toEqual(['features_max', 'features_avg', 'feature_map', 'classifier']);
  });

  it('still builds the graph of an index quantised by version 3 (first Conv in float32), so its queries match its catalog', async () => {
    const { onnxPath } = await ensureOnnxModel(BACKBONE);
    const graph = onnxProto.onnx.ModelProto.decode(quantiseModel(foldModel(await readFile(onnxPath)), { ...calibration, quantiser: 3 })).graph!;
    const count = (op: string) => graph.node!.filter((n) => n.opType === op).length;
    expect([count('QLinearConv'), count('Conv'), count('Relu')]).toEqual([52, 1, 2]);
    await expect(ensureQuantisedModel(BACKBONE, { ...calibration, quantiser: 2 })).rejects.toMatchObject({ code: 'MODEL_MISMATCH' });
  });

  it('refuses a calibration that misses a tensor instead of guessing its range', async () => {
    const { onnxPath } = await ensureOnnxModel(BACKBONE);
    const folded = foldModel(await readFile(onnxPath));
    const ranges = { ...calibration.ranges };
    delete ranges[calibrationTensors(folded)[5]];
    expect(() => quantiseModel(folded, { ...calibration, ranges })).toThrow(/no range/);
  });
});

describe('precision in the settings fingerprint', () => {
  it('tells int8 from float32 and keeps the float32 fingerprint older indexes and heads carry', () => {
    const spec = getBackbone(BACKBONE);
    const old = { backbone: spec.name, width: 224, height: 224, resize: 'stretch' as const, pooling: 'max' as const };
    expect(imageFingerprint(old)).toBe('resnet50-imagenet/224x224/stretch');
    expect(imageFingerprint(storedSettings(old))).toBe(imageFingerprint(old));
    expect(storedSettings(old).precision).toBe('fp32');
    expect(imageFingerprint({ ...old, precision: 'int8' })).not.toBe(imageFingerprint(old));
  });

  it('makes int8 at 224x224 the default for a new index (float32 is the choice of --precision fp32)', () => {
    const s = defaultSettings();
    expect([s.precision, s.width, s.height]).toEqual(['int8', 224, 224]);
  });
});

describe('an int8 index (the default of a new index)', () => {
  it('calibrates on its own catalog, records it, and answers photo queries with the same int8 model', async () => {
    const catalog = await makeCatalog();
    const indexDir = path.join(tempDir(), 'index');
    const report = await buildIndex({ catalogDir: catalog, indexDir });
    expect(report.total).toBe(16);
    const store = SqliteStore.open(indexDir, { readonly: true });
    const manifest = store.getManifest()!;
    const stored = store.loadMatrix('max');
    store.close();
    expect(manifest.settings).toMatchObject({ precision: 'int8', width: 224, height: 224 });
    expect(manifest.calibration).toMatchObject({ method: 'minmax', images: 16, width: 224, height: 224 });
    const lookalike = await Lookalike.open(indexDir);
    try {
      // A catalog photo embedded as an upload (whole photo, no localisation) through the
      // model the index derives from its calibration gives the stored vector again: a
      // float32 model, or another calibration, would not (cosine ~0.99, see above).
      const item = defaultItems()[5];
      const query = await lookalike.embedImage(path.join(catalog, 'images', `${item.id}.jpg`), 'query', undefined, { localise: 'none' });
      const row = stored.ids.indexOf(item.id);
      expect(row).toBeGreaterThanOrEqual(0);
      expect(cosine(query.max, stored.data.subarray(row * stored.dim, (row + 1) * stored.dim))).toBeGreaterThan(0.99999);
      expect((await lookalike.backbone()).precision).toBe('int8');
      const { results } = await lookalike.searchByImage(path.join(catalog, 'images', `${item.id}.jpg`), { k: 1 });
      expect(results[0].id).toBe(item.id);
    } finally {
      await lookalike.close();
    }
  }, 180_000);
});
