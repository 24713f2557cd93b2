/**
 * An embedding space turns an item's stored raw vectors (both poolings of the backbone and
 * the colour descriptor) into the normalised vector that search compares. The plain
 * backbone spaces are here; a trained head (head/, learnt by train/) registers spaces of its own.
 */
import { normaliseRows } from './kernel.js';
import type { Pooling } from '../model/registry.js';

export interface RawVectors {
  n: number;
  max: Float32Array;
  avg: Float32Array;
  colour: Float32Array;
  dim: number;
  colourDim: number;
}

export interface EmbeddingSpace {
  /** Identifies the space in caches and reports, e.g. "backbone:max". */
  id: string;
  dim: number;
  /** n x dim, rows L2-normalised. Must not modify its input. */
  embed(raw: RawVectors): Float32Array;
}

export function backboneSpace(pooling: Pooling, dim: number): EmbeddingSpace {
  return {
    id: `backbone:${pooling}`,
    dim,
    embed: (raw) => normaliseRows(Float32Array.from(pooling === 'max' ? raw.max : raw.avg), dim),
  };
}
