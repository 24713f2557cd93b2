/**
 * Runs a backbone on prepared image tensors with onnxruntime-node and returns both
 * pooled feature vectors (not normalised: the store keeps raw features, search
 * normalises). One session per process; inference runs on ORT's own threads, so the
 * Node event loop stays free to decode the next batch meanwhile.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { ensureOnnxModel } from './onnx-cache.js';
import { CLASSIFIER_OUTPUT, FEATURE_MAP, FEATURES_AVG, FEATURES_MAX } from './convert.js';
import { getBackbone, type BackboneSpec } from './registry.js';

export interface BackboneOutput {
  /** n x dimension, row-major */
  max: Float32Array;
  avg: Float32Array;
  /** n x classes, when asked for and the model has a classifier */
  classifier?: Float32Array;
  /** The last feature map, n x dimension x gridH x gridW, when asked for. */
  featureMap?: { data: Float32Array; gridH: number; gridW: number };
}

export interface RunOptions {
  classifier?: boolean;
  featureMap?: boolean;
}

export class Embedder {
  private constructor(
    readonly spec: BackboneSpec,
    readonly weightsId: string,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(backbone: string, options: { threads?: number; log?: (m: string) => void } = {}): Promise<Embedder> {
    const spec = getBackbone(backbone);
    const { onnxPath, weightsId } = await ensureOnnxModel(spec.name, options.log);
    const session = await ort.InferenceSession.create(onnxPath, {
      intraOpNumThreads: options.threads ?? Math.max(1, os.availableParallelism()),
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    });
    return new Embedder(spec, weightsId, session);
  }

  get dimension(): number {
    return this.spec.dimension;
  }

  /** `pixels` is n x 3 x height x width, prepared by image/prepareImage. */
  async run(pixels: Float32Array, n: number, height: number, width: number, options: boolean | RunOptions = {}): Promise<BackboneOutput> {
    const { classifier = false, featureMap = false } = typeof options === 'boolean' ? { classifier: options } : options;
    const input = new ort.Tensor('float32', pixels, [n, 3, height, width]);
    const fetches = [FEATURES_MAX, FEATURES_AVG];
    if (classifier) fetches.push(CLASSIFIER_OUTPUT);
    if (featureMap) fetches.push(FEATURE_MAP);
    const out = await this.session.run({ input }, fetches);
    const map = featureMap ? out[FEATURE_MAP] : undefined;
    return {
      max: out[FEATURES_MAX].data as Float32Array,
      avg: out[FEATURES_AVG].data as Float32Array,
      classifier: classifier ? (out[CLASSIFIER_OUTPUT].data as Float32Array) : undefined,
      featureMap: map ? { data: map.data as Float32Array, gridH: Number(map.dims[2]), gridW: Number(map.dims[3]) } : undefined,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
