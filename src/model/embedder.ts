/**
 * Runs a backbone on prepared image tensors with onnxruntime-node and returns both
 * pooled feature vectors (not normalised: the store keeps raw features, search
 * normalises). One session per process; inference runs on ORT's own threads, so the
 * Node event loop stays free to decode the next batch meanwhile.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { ensureOnnxModel, ensureQuantisedModel } from './onnx-cache.js';
import { CLASSIFIER_OUTPUT, FEATURE_MAP, FEATURES_AVG, FEATURES_MAX } from './convert.js';
import { calibrationId, type Calibration } from './quantise.js';
import { getBackbone, type BackboneSpec, type Precision } from './registry.js';

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

export interface EmbedderOptions {
  threads?: number;
  log?: (m: string) => void;
  /** float32 (default) or int8; int8 needs the calibration it was quantised for. */
  precision?: Precision;
  calibration?: Calibration;
  /** Write onnxruntime's per-operator profile to files starting with this prefix (bench). */
  profilePrefix?: string;
}

/**
 * onnxruntime's worker threads spin between operators by default, waiting for work. On a
 * machine whose cores are shared (decoding in libvips threads, other processes), a
 * spinning thread holds a core another thread needs: on this 2-core machine under load,
 * int8 inference ran at 68 images/s spinning and 176 without (scratch loop, same batches).
 */
export const NO_SPINNING = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };

export class Embedder {
  private constructor(
    readonly spec: BackboneSpec,
    readonly weightsId: string,
    readonly precision: Precision,
    readonly calibration: Calibration | undefined,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(backbone: string, options: EmbedderOptions = {}): Promise<Embedder> {
    const spec = getBackbone(backbone);
    const precision = options.precision ?? 'fp32';
    // A programming error, not a user's: an int8 index always records its calibration.
    if (precision === 'int8' && !options.calibration) throw new Error('an int8 backbone needs the calibration it was quantised for');
    const { onnxPath, weightsId } = precision === 'int8'
      ? await ensureQuantisedModel(spec.name, options.calibration!, options.log)
      : await ensureOnnxModel(spec.name, options.log);
    const session = await ort.InferenceSession.create(onnxPath, {
      intraOpNumThreads: options.threads ?? Math.max(1, os.availableParallelism()),
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
      extra: NO_SPINNING,
      ...(options.profilePrefix ? { enableProfiling: true, profileFilePrefix: options.profilePrefix } : {}),
    });
    return new Embedder(spec, weightsId, precision, precision === 'int8' ? options.calibration : undefined, session);
  }

  get dimension(): number {
    return this.spec.dimension;
  }

  /** The exact model this embedder runs: the weights, and for int8 the calibration. */
  get modelId(): string {
    return this.calibration ? `${this.weightsId}/int8:${calibrationId(this.calibration)}` : this.weightsId;
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

  /** Ends profiling (profilePrefix): onnxruntime writes the profile file then. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
