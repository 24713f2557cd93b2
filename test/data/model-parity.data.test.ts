/**
 * The ONNX ResNet50 matches TensorFlow.js on the original weights on real catalog photos,
 * and classifies obvious products as ImageNet would. Needs the dev catalog
 * (../shared/datasets/fashion-small or LOOKALIKE_DATASET); skipped without it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Embedder } from '../../src/model/embedder.js';
import { getBackbone } from '../../src/model/registry.js';
import { prepareImage } from '../../src/image/prepare.js';
import { devCatalogDir } from '../../src/paths.js';
import { argmax, compareOutputs, loadTfjsReference, stackImages, type ParityReport, type TfjsReference } from '../helpers/tfjs-reference.js';

const BACKBONE = 'resnet50-imagenet';
const MIN_COSINE = 0.9999;
const CATALOG = devCatalogDir();

/**
 * Dev-catalog photos whose content is unambiguous, with the ImageNet classes that are right
 * for them (labels.json spelling). Chosen where the model's top-1 is confident
 * (p >= 0.92, runner-up <= 0.05), so the assertion is stable.
 */
const PHOTOS: Array<{ id: string; what: string; accept: string[] }> = [
  { id: '56670', what: 'Maxima Men Black Dial Watch', accept: ['analog_clock', 'wall_clock', 'digital_watch', 'stopwatch'] },
  { id: '45260', what: 'CASIO G-Shock Men Black Digital Watch', accept: ['digital_watch', 'digital_clock', 'stopwatch', 'analog_clock'] },
  { id: '18332', what: 'Fila Unisex Navy Blue & Red Ventos Backpacks', accept: ['backpack'] },
  { id: '51692', what: 'Louis Philippe Men Oversized Sunglasses', accept: ['sunglass', 'sunglasses'] },
  { id: '23847', what: 'ADIDAS Men White Duramo 3 Sports Shoes', accept: ['running_shoe'] },
  { id: '49699', what: 'Park Avenue Men Red & Brown Striped Tie', accept: ['Windsor_tie'] },
];

describe.skipIf(!existsSync(path.join(CATALOG, 'images')))('ResNet50: ONNX conversion vs TensorFlow.js on catalog photos', () => {
  let embedder: Embedder;
  let reference: TfjsReference;
  let report: ParityReport;
  let top1Onnx: string[];

  beforeAll(async () => {
    const spec = getBackbone(BACKBONE);
    const { width, height } = spec.defaultSize;
    const files = PHOTOS.map((p) => path.join(CATALOG, 'images', `${p.id}.jpg`));
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length) throw new Error(`the dev catalog at ${CATALOG} lacks ${missing.join(', ')}`);
    const prepared = await Promise.all(files.map(async (f) =>
      (await prepareImage(f, { width, height, resize: 'stretch', channelOrder: spec.channelOrder, channelMeans: spec.channelMeans })).tensor));
    const batch = stackImages(prepared);
    const labels = await spec.labels!();
    [embedder, reference] = await Promise.all([Embedder.create(BACKBONE), loadTfjsReference()]);
    // One batch each: tfjs on wasm takes about a second per 224 x 224 image.
    const onnx = await embedder.run(batch, PHOTOS.length, height, width, true);
    const ref = reference.run(batch, PHOTOS.length, height, width);
    report = compareOutputs(onnx, ref, PHOTOS.length);
    top1Onnx = PHOTOS.map((_, i) => labels[argmax(onnx.classifier!, labels.length, i)]);
    console.info('parity (catalog):', JSON.stringify({ ...report, top1: Object.fromEntries(PHOTOS.map((p, i) => [p.id, top1Onnx[i]])) }));
  }, 180_000);

  afterAll(async () => {
    reference?.dispose();
    await embedder?.release();
  });

  it('gives the same max-pooled and avg-pooled embeddings (cosine >= 0.9999)', () => {
    expect(Math.min(...report.cosineMax)).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(Math.min(...report.cosineAvg)).toBeGreaterThanOrEqual(MIN_COSINE);
  });

  it('gives the same ImageNet probabilities', () => {
    expect(report.top1Onnx).toEqual(report.top1Tfjs);
    expect(report.maxProbDiff).toBeLessThan(1e-3);
  });

  it.each(PHOTOS.map((p, i) => ({ ...p, i })))('classifies $id ($what) as one of $accept', ({ i, accept }) => {
    expect(accept).toContain(top1Onnx[i]);
  });
});
