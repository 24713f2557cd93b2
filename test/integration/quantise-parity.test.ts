/**
 * The int8 backbone (src/model/quantise.ts) must embed like the float32 one it was
 * quantised from: calibrated on one set of drawn product photos, it is compared on
 * others (shapes and colours it was not calibrated on). Fails when quantisation drifts
 * (a wrong scale, zero point or bias, a ReLU lost, the first Conv quantised after all)
 * and when the integer operators are no longer the ones in the graph.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { Embedder, sessionConfig } from '../../src/model/embedder.js';
import { probeInt8Kernels } from '../../src/model/cpu.js';
import { calibrate } from '../../src/model/calibrate.js';
import { ensureOnnxModel, ensureQuantisedModel } from '../../src/model/onnx-cache.js';
import { calibrationTensors, foldModel, quantiseModel, saturatesWithoutVnni, QUANTISER_VERSION, INT16_MAX, type Calibration } from '../../src/model/quantise.js';
import { defaultSettings } from '../../src/model/registry.js';
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

  it('cannot saturate int16 on any x86 CPU: every integer Conv multiplies uint8 activations by weights within +-64', async () => {
    // The static bound behind "the same vectors on every CPU": without VNNI, x86 kernels add
    // each pair of uint8 x int8 products in saturating int16 (VPMADDUBSW). 2 x 255 x 64 =
    // 32,640 fits; 8-bit weights (127) reach 64,770 and did saturate (see the qemu test below).
    const { onnxPath } = await ensureQuantisedModel(BACKBONE, calibration);
    const bound = worstPairSum(onnxProto.onnx.ModelProto.decode(await readFile(onnxPath)).graph!);
    expect(bound.convs).toBe(53);
    expect(bound.activationsUint8).toBe(true);
    expect(bound.maxWeight).toBeLessThanOrEqual(64);
    expect(bound.maxWeight).toBeGreaterThanOrEqual(60); // the range is used, not thrown away
    expect(bound.pairSum).toBeLessThanOrEqual(INT16_MAX);
    expect(saturatesWithoutVnni(QUANTISER_VERSION)).toBe(false);
    // The same check fails on the version 4 graph (8-bit weights): it is not vacuous.
    const { onnxPath: v4 } = await ensureQuantisedModel(BACKBONE, { ...calibration, quantiser: 4 });
    expect(worstPairSum(onnxProto.onnx.ModelProto.decode(await readFile(v4)).graph!).pairSum).toBeGreaterThan(INT16_MAX);
    expect(saturatesWithoutVnni(4)).toBe(true);
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

/** The largest |pair sum| any QLinearConv can form: 2 x 255 (uint8 activations) x its largest |weight|. */
function worstPairSum(graph: onnxProto.onnx.IGraphProto): { convs: number; maxWeight: number; pairSum: number; activationsUint8: boolean } {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const U8 = onnxProto.onnx.TensorProto.DataType.UINT8, S8 = onnxProto.onnx.TensorProto.DataType.INT8;
  let maxWeight = 0, convs = 0, activationsUint8 = true;
  for (const node of graph.node ?? []) {
    // Every integer product op of onnxruntime is one of these: none may escape the bound.
    expect(['MatMulInteger', 'ConvInteger', 'QLinearMatMul', 'QGemm']).not.toContain(node.opType);
    if (node.opType !== 'QLinearConv') continue;
    convs++;
    const xZeroPoint = inits.get(node.input![2])!, w = inits.get(node.input![3])!;
    activationsUint8 &&= xZeroPoint.dataType === U8;
    expect(w.dataType).toBe(S8);
    const weights = new Int8Array(w.rawData!.buffer, w.rawData!.byteOffset, w.rawData!.byteLength);
    for (const v of weights) maxWeight = Math.max(maxWeight, Math.abs(v));
  }
  return { convs, maxWeight, pairSum: 2 * 255 * maxWeight, activationsUint8 };
}

/**
 * qemu-x86_64 runs node with a CPU model of its choosing: Haswell has AVX2 and FMA but no
 * VNNI, like most rented x86 servers. onnxruntime picks its kernels by CPUID, so under it the
 * same process takes the saturating u8 x s8 path. `.ci/run` installs qemu-user.
 */
const QEMU = process.arch === 'x64' && spawnSync('qemu-x86_64', ['-version']).status === 0;
const EMULATED_CPU = 'Haswell';

describe.skipIf(!QEMU)(`the same vectors on a CPU without VNNI (qemu-x86_64 -cpu ${EMULATED_CPU}: AVX2 and FMA, no VNNI)`, () => {
  const settings = defaultSettings();
  const { width, height } = settings;
  const script = fileURLToPath(new URL('../helpers/emulated-embed.mjs', import.meta.url));
  let pixelsFile: string;
  let calibration: Calibration;
  const n = 2;

  const embed = async (emulated: boolean, model: string, kernels: 'u8s8' | 'u8u8'): Promise<Float32Array> => {
    const out = path.join(tempDir(), 'features.bin');
    const args = [script, model, pixelsFile, String(n), String(height), String(width), JSON.stringify(sessionConfig({ kernels })), out];
    // qemu's warnings about CPU features TCG lacks go to stderr; a failure still throws.
    if (emulated) execFileSync('qemu-x86_64', ['-cpu', EMULATED_CPU, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'ignore'] });
    else execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const bytes = await readFile(out);
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  };
  const worstCosine = (a: Float32Array, b: Float32Array) => Math.min(...Array.from({ length: n }, (_, i) => cosine(a.subarray(i * 2048, (i + 1) * 2048), b.subarray(i * 2048, (i + 1) * 2048))));

  beforeAll(async () => {
    const drawn = async (shape: Shape, colour: string) => (await prepareImage(await drawProduct(shape, colour), { ...prepareOptionsFor(settings), label: shape })).tensor;
    const calib = await Promise.all(SHAPES.flatMap((shape) => CALIBRATION_COLOURS.map((colour) => drawn(shape, colour))));
    const calibPixels = new Float32Array(calib.length * 3 * width * height);
    calib.forEach((t, i) => calibPixels.set(t, i * t.length));
    calibration = await calibrate(BACKBONE, calibPixels, calib.length, height, width);
    const test = await Promise.all([['shirt', '#e90'], ['bag', '#7ad']].map(([shape, colour]) => drawn(shape as Shape, colour)));
    const pixels = new Float32Array(n * 3 * width * height);
    test.forEach((t, i) => pixels.set(t, i * t.length));
    pixelsFile = path.join(tempDir(), 'pixels.bin');
    await writeFile(pixelsFile, pixels);
  }, 120_000);

  it('gives the default model\'s vectors bit for bit, and an 8-bit graph on u8 x u8 kernels too; without them the 8-bit graph drifts', async () => {
    const v5 = (await ensureQuantisedModel(BACKBONE, calibration)).onnxPath;
    const v4 = (await ensureQuantisedModel(BACKBONE, { ...calibration, quantiser: 4 })).onnxPath;
    const native5 = await embed(false, v5, 'u8s8');
    const emulated5 = await embed(true, v5, 'u8s8');
    expect(worstCosine(native5, emulated5)).toBeGreaterThanOrEqual(0.9999);
    // The 8-bit graph's exact vectors on this CPU: its u8 x s8 kernels where they sum exactly
    // (VNNI), else its u8 x u8 ones (as the product does for a v4 index on an AVX2 CPU).
    const hostExact = (await probeInt8Kernels()).exact;
    const native4 = await embed(false, v4, hostExact ? 'u8s8' : 'u8u8');
    expect(worstCosine(native4, await embed(true, v4, 'u8u8'))).toBeGreaterThanOrEqual(0.9999);
    // What main did before quantiser v5 on such a CPU: the emulation is a real AVX2 path.
    const saturated = worstCosine(native4, await embed(true, v4, 'u8s8'));
    console.info(`emulated ${EMULATED_CPU}: v5 worst cosine to this CPU ${worstCosine(native5, emulated5).toFixed(6)}; v4 on u8 x s8 (saturating) ${saturated.toFixed(4)}`);
    expect(saturated).toBeLessThan(0.999);
  }, 300_000);
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
