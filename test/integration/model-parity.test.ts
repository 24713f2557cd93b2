/**
 * The ONNX conversion of the Keras ResNet50 (src/model/convert.ts, run by onnxruntime)
 * computes what the original weights compute: same embeddings (both poolings) and same
 * ImageNet probabilities as TensorFlow.js running the untouched model.json + shards.
 * Inputs are drawn here, so this runs without the dev catalog.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import sharp from 'sharp';
import { Embedder } from '../../src/model/embedder.js';
import { getBackbone } from '../../src/model/registry.js';
import { prepareImage } from '../../src/image/prepare.js';
import { compareOutputs, loadTfjsReference, stackImages, type ParityReport, type TfjsReference } from '../helpers/tfjs-reference.js';

const BACKBONE = 'resnet50-imagenet';
const MIN_COSINE = 0.9999;

/** Shapes, gradients and colours that give the network varied, non-trivial activations. */
const DRAWINGS: Record<string, string> = {
  'yellow disc on blue': `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300">
    <rect width="300" height="300" fill="#2250b0"/><circle cx="150" cy="150" r="90" fill="#ffd000"/></svg>`,
  'triangle on a gradient': `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="260">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#e01818"/><stop offset="1" stop-color="#10a040"/></linearGradient></defs>
    <rect width="400" height="260" fill="url(#g)"/><polygon points="200,20 360,240 40,240" fill="#111111"/></svg>`,
  'stripes and radial glow': `<svg xmlns="http://www.w3.org/2000/svg" width="240" height="320">
    <defs><radialGradient id="r"><stop offset="0" stop-color="#ffffff"/><stop offset="1" stop-color="#8020a0"/></radialGradient></defs>
    <rect width="240" height="320" fill="url(#r)"/>
    ${Array.from({ length: 8 }, (_, i) => `<rect x="0" y="${i * 40}" width="240" height="14" fill="#f08000" opacity="0.8"/>`).join('')}</svg>`,
  'transparent ring and bars': `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200">
    <circle cx="100" cy="100" r="70" fill="none" stroke="#008080" stroke-width="24"/>
    <rect x="20" y="150" width="160" height="20" fill="#c00060"/><rect x="90" y="10" width="20" height="120" fill="#404040"/></svg>`,
};

describe('ResNet50: ONNX conversion vs TensorFlow.js on the original weights (drawn images)', () => {
  let embedder: Embedder;
  let reference: TfjsReference;
  let report: ParityReport;
  const names = Object.keys(DRAWINGS);

  beforeAll(async () => {
    const spec = getBackbone(BACKBONE);
    const { width, height } = spec.defaultSize;
    const prepared = await Promise.all(names.map(async (name) => {
      const png = await sharp(Buffer.from(DRAWINGS[name])).png().toBuffer();
      return (await prepareImage(png, { width, height, resize: 'stretch', channelOrder: spec.channelOrder, channelMeans: spec.channelMeans, label: name })).tensor;
    }));
    const batch = stackImages(prepared);
    [embedder, reference] = await Promise.all([Embedder.create(BACKBONE), loadTfjsReference()]);
    const onnx = await embedder.run(batch, names.length, height, width, true);
    const ref = reference.run(batch, names.length, height, width);
    report = compareOutputs(onnx, ref, names.length);
    console.info('parity (drawn):', JSON.stringify(report));
  }, 180_000);

  afterAll(async () => {
    reference?.dispose();
    await embedder?.release();
  });

  it('runs the reference on the wasm backend', () => {
    expect(reference.backend).toBe('wasm');
  });

  it('gives the same max-pooled embeddings (cosine >= 0.9999)', () => {
    expect(Math.min(...report.cosineMax)).toBeGreaterThanOrEqual(MIN_COSINE);
  });

  it('gives the same avg-pooled embeddings (cosine >= 0.9999)', () => {
    expect(Math.min(...report.cosineAvg)).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(report.maxFeatureRelDiff).toBeLessThan(1e-3);
  });

  it('gives the same ImageNet probabilities', () => {
    expect(report.top1Onnx).toEqual(report.top1Tfjs);
    expect(report.maxProbDiff).toBeLessThan(1e-3);
  });

  it('matches at another input size (non-square, odd feature-map sizes)', async () => {
    // 200 x 264 runs the graph's dynamic height/width away from 224 x 224, with odd-sized
    // feature maps (25 x 33, 13 x 17, 7 x 9) through the padded and strided layers.
    const spec = getBackbone(BACKBONE);
    const [height, width] = [200, 264];
    const png = await sharp(Buffer.from(DRAWINGS[names[1]])).png().toBuffer();
    const { tensor } = await prepareImage(png, { width, height, resize: 'stretch', channelOrder: spec.channelOrder, channelMeans: spec.channelMeans });
    const other = compareOutputs(await embedder.run(tensor, 1, height, width, true), reference.run(tensor, 1, height, width), 1);
    console.info(`parity (${width}x${height}):`, JSON.stringify(other));
    expect(other.cosineMax[0]).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(other.cosineAvg[0]).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(other.top1Onnx).toEqual(other.top1Tfjs);
    expect(other.maxProbDiff).toBeLessThan(1e-3);
  });

  it('gives different embeddings to different drawings (the comparison is not vacuous)', () => {
    // Parity on near-identical inputs would prove little: the drawings must spread out.
    expect(new Set(report.top1Tfjs).size).toBeGreaterThan(1);
  });
});
