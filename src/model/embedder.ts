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
import { calibrationId, saturatesWithoutVnni, weightQmaxOf, type Calibration } from './quantise.js';
import { getBackbone, type BackboneSpec, type Precision } from './registry.js';
import { describeCpu, int8KernelsSaturate, probeInt8Kernels, type CpuDescription } from './cpu.js';
import { LookalikeError } from '../errors.js';

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

/**
 * The arithmetic an embedder runs, as info, /api/health and bench report it. Every
 * process that embeds for one index (query, serve, worker) on any x86-64 CPU computes the
 * same integer sums: either the graph cannot saturate (quantiser v5's weights), or the CPU
 * sums exactly (VNNI), or onnxruntime's u8 x u8 kernels are used (`kernels: 'u8u8'`).
 */
export interface Arithmetic {
  precision: Precision;
  /** int8: the quantiser version and its weight bits (7 or 8) */
  quantiser?: number;
  weightBits?: number;
  /**
   * float32; u8s8: onnxruntime's uint8 x int8 kernels (VNNI or AVX2/AVX-512 pair sums);
   * u8u8: its uint8 x uint8 kernels, exact on every x86 CPU and about fp32's speed, used for
   * an older 8-bit graph on a CPU whose u8 x s8 kernels saturate.
   */
  kernels: 'float32' | 'u8s8' | 'u8u8';
  /** Whether this CPU's u8 x s8 kernels saturate int16 pair sums (the probe in model/cpu.ts). */
  cpuSaturates?: boolean;
  /** Whether the kernels chosen summed the probe exactly with the graph's weight bound: false is refused (INT8_INEXACT). */
  exact: boolean;
  cpu: CpuDescription;
  /** One line for people. */
  summary: string;
}

/**
 * The kernels an int8 graph runs on: u8 x s8 unless the CPU's saturate (the probe) and the
 * graph's weights can reach int16 (quantiser v3/v4), where only u8 x u8 sums exactly.
 */
export function int8KernelsFor(quantiser: number, cpuSaturates: boolean): 'u8s8' | 'u8u8' {
  return cpuSaturates && saturatesWithoutVnni(quantiser) ? 'u8u8' : 'u8s8';
}

const int8Arithmetics = new Map<number, Promise<Arithmetic>>();

/**
 * What an int8 graph of a quantiser version runs as on this CPU: probed once per process
 * and version (the CPU does not change), so /api/health and every embedder reuse it.
 */
export function int8Arithmetic(quantiser: number): Promise<Arithmetic> {
  let known = int8Arithmetics.get(quantiser);
  if (!known) int8Arithmetics.set(quantiser, known = probeInt8Arithmetic(quantiser));
  return known;
}

async function probeInt8Arithmetic(quantiser: number): Promise<Arithmetic> {
  const cpuSaturates = await int8KernelsSaturate();
  const weightBits = weightQmaxOf(quantiser) > 64 ? 8 : 7;
  const kernels = int8KernelsFor(quantiser, cpuSaturates);
  // Checked, not assumed: the chosen kernels sum the probe at the graph's own weight bound exactly.
  const exact = (await probeInt8Kernels({ exactKernels: kernels === 'u8u8', weight: weightQmaxOf(quantiser) })).exact;
  const why = kernels === 'u8u8'
    ? `u8 x u8 kernels (this CPU saturates u8 x s8 pair sums, which ${weightBits}-bit weights reach: exact, about float32's speed)`
    : cpuSaturates
      ? `u8 x s8 kernels (this CPU adds product pairs in int16; ${weightBits}-bit weights stay within it: exact)`
      : 'u8 x s8 kernels (this CPU sums products exactly)';
  return { precision: 'int8', quantiser, weightBits, kernels, cpuSaturates, exact, cpu: describeCpu(), summary: `int8 (quantiser v${quantiser}, ${weightBits}-bit weights), ${why}` };
}

/** Refuses an arithmetic whose integer sums this CPU does not compute exactly (INT8_INEXACT). */
export function checkExact(arithmetic: Arithmetic): void {
  if (!arithmetic.exact) {
    throw new LookalikeError('INT8_INEXACT', { cpu: arithmetic.cpu.model, detail: `${arithmetic.kernels} kernels gave a clipped sum on the int8 probe` });
  }
}

const FLOAT32_ARITHMETIC = (): Arithmetic => ({ precision: 'fp32', kernels: 'float32', exact: true, cpu: describeCpu(), summary: 'float32' });

/** The arithmetic of an index: int8 of its calibration's quantiser, or float32 without one. */
export function indexArithmetic(calibration: Calibration | undefined): Promise<Arithmetic> {
  return calibration ? int8Arithmetic(calibration.quantiser) : Promise.resolve(FLOAT32_ARITHMETIC());
}

/** onnxruntime's session entries for an arithmetic: u8u8 is its `session.x64quantprecision`. */
export function sessionConfig(arithmetic: Pick<Arithmetic, 'kernels'>): { session: Record<string, unknown> } {
  return arithmetic.kernels === 'u8u8' ? { session: { ...NO_SPINNING.session, x64quantprecision: '1' } } : NO_SPINNING;
}

export class Embedder {
  private constructor(
    readonly spec: BackboneSpec,
    readonly weightsId: string,
    readonly precision: Precision,
    readonly calibration: Calibration | undefined,
    readonly arithmetic: Arithmetic,
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
    const arithmetic = await indexArithmetic(precision === 'int8' ? options.calibration : undefined);
    checkExact(arithmetic);
    const session = await ort.InferenceSession.create(onnxPath, {
      intraOpNumThreads: options.threads ?? Math.max(1, os.availableParallelism()),
      interOpNumThreads: 1,
      // 'all' includes level 2, where onnxruntime rewrites int8 weights for its u8 x u8 kernels.
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
      extra: sessionConfig(arithmetic),
      ...(options.profilePrefix ? { enableProfiling: true, profileFilePrefix: options.profilePrefix } : {}),
    });
    return new Embedder(spec, weightsId, precision, precision === 'int8' ? options.calibration : undefined, arithmetic, session);
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
