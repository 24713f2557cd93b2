/**
 * The baseline `lookalike bench` holds indexing against: a plain embed-only pipeline, as
 * anyone would write it in an afternoon. The same float32 ResNet50 at 224x224 on
 * onnxruntime-node, batch 16, sharp decoding and bilinear resize, max-pooled embeddings
 * appended to a flat file; no catalog, no store, no colour histogram, no checks, decoding
 * and inference one after the other. What `lookalike index` does beyond it is what a
 * product needs (resumable store, bad-image handling, both poolings, colour); the bench
 * shows what that costs.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { ensureOnnxModel } from '../../model/onnx-cache.js';
import { FEATURES_MAX } from '../../model/convert.js';
import { getBackbone } from '../../model/registry.js';

export interface PlainRun { images: number; seconds: number; imagesPerSecond: number }

export async function runPlainPipeline(files: string[], outFile: string, options: { backbone: string; width?: number; height?: number; batch?: number }): Promise<PlainRun> {
  const started = performance.now();
  const spec = getBackbone(options.backbone);
  const width = options.width ?? 224, height = options.height ?? 224, batch = options.batch ?? 16;
  const { onnxPath } = await ensureOnnxModel(spec.name);
  const session = await ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: os.availableParallelism(), graphOptimizationLevel: 'all', executionProviders: ['cpu'],
  });
  const plane = 3 * width * height;
  const [m0, m1, m2] = spec.channelMeans;
  const fd = openSync(outFile, 'w');
  let done = 0;
  try {
    for (let b = 0; b < files.length; b += batch) {
      const chunk = files.slice(b, b + batch);
      const pixels = new Float32Array(chunk.length * plane);
      await Promise.all(chunk.map(async (file, i) => {
        const rgb = await sharp(file).resize(width, height, { fit: 'fill', kernel: 'linear' }).removeAlpha().raw().toBuffer();
        const base = i * plane;
        for (let p = 0, j = 0; p < width * height; p++, j += 3) {
          pixels[base + p] = rgb[j + 2] - m0; // BGR, caffe means
          pixels[base + width * height + p] = rgb[j + 1] - m1;
          pixels[base + 2 * width * height + p] = rgb[j] - m2;
        }
      }));
      const out = await session.run({ input: new ort.Tensor('float32', pixels, [chunk.length, 3, height, width]) }, [FEATURES_MAX]);
      const v = out[FEATURES_MAX].data as Float32Array;
      writeSync(fd, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      done += chunk.length;
    }
  } finally {
    closeSync(fd);
    await session.release();
  }
  const seconds = (performance.now() - started) / 1000;
  return { images: done, seconds, imagesPerSecond: done / seconds };
}
