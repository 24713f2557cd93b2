/**
 * An embedding space turns an item's stored raw vectors (both poolings of the backbone and
 * the colour descriptor) into the normalised vector that search compares. The plain
 * backbone spaces are here; a trained head (head/, learnt by train/) registers spaces of its own.
 */
import { normaliseRows } from './kernel.js';
import type { Pooling } from '../model/registry.js';
import type { Store } from '../store/types.js';

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
  /**
   * A blend's parts, in the order their sub-vectors stand: cosine in the blend is the sum of
   * weight x cosine in each part (approximate search goes through the parts' indexes).
   */
  parts?: ReadonlyArray<{ space: EmbeddingSpace; weight: number }>;
}

export function backboneSpace(pooling: Pooling, dim: number): EmbeddingSpace {
  return {
    id: `backbone:${pooling}`,
    dim,
    embed: (raw) => normaliseRows(Float32Array.from(pooling === 'max' ? raw.max : raw.avg), dim),
  };
}

/**
 * Two spaces side by side, weighted: cosine in the blend is `weight` x cosine in `a` plus
 * (1 - weight) x cosine in `b`, since both parts are unit vectors.
 */
export function blendedSpace(a: EmbeddingSpace, b: EmbeddingSpace, weight: number): EmbeddingSpace {
  const wa = Math.sqrt(weight), wb = Math.sqrt(1 - weight);
  const dim = a.dim + b.dim;
  return {
    id: `blend(${a.id}*${weight.toFixed(2)},${b.id})`,
    dim,
    parts: [{ space: a, weight }, { space: b, weight: 1 - weight }],
    embed: (raw) => {
      const ea = a.embed(raw), eb = b.embed(raw);
      const out = new Float32Array(raw.n * dim);
      for (let i = 0; i < raw.n; i++) {
        for (let j = 0; j < a.dim; j++) out[i * dim + j] = wa * ea[i * a.dim + j];
        for (let j = 0; j < b.dim; j++) out[i * dim + a.dim + j] = wb * eb[i * b.dim + j];
      }
      return out;
    },
  };
}

/**
 * Every embedded item's raw vectors, read from the store at once (a network store fetches
 * them in bulk first), with their ids in row order: what training and re-centring a head
 * read. A serving engine loads them lazily instead (SpaceVectors.rawVectors, search/vectors.ts).
 */
export async function loadRawVectors(store: Store): Promise<{ ids: string[]; raw: RawVectors }> {
  await store.preload?.(['max', 'avg', 'colour']);
  const max = store.loadMatrix('max'), avg = store.loadMatrix('avg'), colour = store.loadMatrix('colour');
  return { ids: max.ids, raw: { n: max.ids.length, max: max.data, avg: avg.data, colour: colour.data, dim: max.dim, colourDim: colour.dim } };
}
