/**
 * The 2-D map of an index's embedding space: PCA to ~50 dimensions (which removes noise
 * and makes the neighbour search of t-SNE 40x cheaper than on 2048-d vectors), then
 * Barnes-Hut t-SNE (viz/tsne.ts). The result is stored as <indexDir>/map.json, which the
 * web page serves (GET /api/map) and draws interactively, and which reports reuse.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { INDEX_FILES } from '../../defaults.js';
import type { Lookalike } from '../../lookalike.js';
import type { Pooling } from '../../model/registry.js';
import { fitPca, projectPca } from '../../math/pca.js';
import { Random, sampleWithoutReplacement } from '../../math/random.js';
import { tsne } from './tsne.js';

export const MAP_FILE = INDEX_FILES.map;

/** <indexDir>/map.json. `method`, `attribute`, `createdAt` and `points` are the contract with the web page. */
export interface MapFile {
  method: 'tsne';
  /** The attribute the map was coloured by when it was made (the page may recolour). */
  attribute?: string;
  createdAt: string;
  points: Array<{ id: string; x: number; y: number }>;
  /** How it was made. */
  space?: string;
  perplexity?: number;
  iterations?: number;
  pcaDimensions?: number;
  /** Items in the index when the map was made (points may be a sample). */
  indexItems?: number;
  seconds?: number;
}

export type MapPhase = 'load' | 'pca' | 'neighbours' | 'affinities' | 'optimise';

export interface MapOptions {
  pooling?: Pooling;
  mode?: string;
  attribute?: string;
  perplexity?: number;
  iterations?: number;
  /** Map only this many items, drawn at random (seeded). */
  sample?: number;
  /** Dimensions kept by the PCA before t-SNE. Default 50. */
  pcaDimensions?: number;
  seed?: number;
  /** Progress within a phase (t-SNE phases report iterations / rows done). */
  onProgress?: (phase: MapPhase, done: number, total: number) => void;
}

export interface MapResult {
  map: MapFile;
  /** Seconds per phase. */
  timings: Record<MapPhase, number> & { total: number };
}

export async function computeMap(lookalike: Lookalike, options: MapOptions = {}): Promise<MapResult> {
  const started = performance.now();
  const timings = { load: 0, pca: 0, neighbours: 0, affinities: 0, optimise: 0, total: 0 };
  const seed = options.seed ?? 0;
  const perplexity = options.perplexity ?? 30;
  const iterations = options.iterations ?? 1000;

  let t = performance.now();
  options.onProgress?.('load', 0, 1);
  const space = lookalike.space({ pooling: options.pooling, mode: options.mode });
  const index = lookalike.indexView();
  const { data: full, dim } = index.matrix(space);
  const items = index.items;
  let rows: Int32Array | undefined;
  if (options.sample !== undefined && options.sample < items.length) {
    rows = sampleWithoutReplacement(new Random(seed), items.length, options.sample);
  }
  const n = rows ? rows.length : items.length;
  let data = full;
  if (rows) {
    data = new Float32Array(n * dim);
    rows.forEach((r, i) => data.set(full.subarray(r * dim, (r + 1) * dim), i * dim));
  }
  timings.load = (performance.now() - t) / 1000;
  options.onProgress?.('load', 1, 1);

  t = performance.now();
  const pcaDims = Math.min(options.pcaDimensions ?? 50, dim, Math.max(1, n - 1));
  let reduced = data, d = dim;
  if (pcaDims < dim) {
    options.onProgress?.('pca', 0, 1);
    // A fit on 8,000 rows finds the leading components of CNN features about as well as
    // one on all 31,000, at a quarter of the cost; every row is then projected.
    const pca = fitPca(data, n, dim, pcaDims, { seed, sampleRows: n > 8000 ? 8000 : undefined });
    reduced = projectPca(pca, data, n);
    d = pcaDims;
    options.onProgress?.('pca', 1, 1);
  }
  timings.pca = (performance.now() - t) / 1000;

  let phase: MapPhase | undefined;
  let phaseStart = performance.now();
  const xy = tsne(reduced, n, d, {
    perplexity: Math.min(perplexity, Math.max(1, (n - 1) / 3)),
    iterations,
    seed,
    onProgress: (done, total, p) => {
      if (p !== phase) {
        const now = performance.now();
        if (phase) timings[phase] += (now - phaseStart) / 1000;
        phase = p;
        phaseStart = now;
      }
      options.onProgress?.(p, done, total);
    },
  });
  if (phase) timings[phase] += (performance.now() - phaseStart) / 1000;
  timings.total = (performance.now() - started) / 1000;

  const points = Array.from({ length: n }, (_, i) => ({
    id: items[rows ? rows[i] : i].id,
    x: round(xy[2 * i]),
    y: round(xy[2 * i + 1]),
  }));
  return {
    map: {
      method: 'tsne',
      attribute: options.attribute,
      createdAt: new Date().toISOString(),
      points,
      space: space.id,
      perplexity,
      iterations,
      pcaDimensions: d,
      indexItems: items.length,
      seconds: timings.total,
    },
    timings,
  };
}

const round = (v: number) => Math.round(v * 10_000) / 10_000;

/** Stores the map with the index (its folder, or the shared store); returns where, for a person. */
export async function writeMapFile(lookalike: Lookalike, map: MapFile): Promise<string> {
  return lookalike.saveMap(JSON.stringify(map));
}

/** The stored map of an index (opened, or a folder), if any (undefined when absent or unreadable). */
export async function readMapFile(index: string | Lookalike): Promise<MapFile | undefined> {
  try {
    const bytes = typeof index === 'string' ? await readFile(path.join(index, MAP_FILE)) : await (await index.storedMap())?.read();
    if (!bytes) return undefined;
    const map = JSON.parse(bytes.toString('utf8')) as MapFile;
    return Array.isArray(map.points) ? map : undefined;
  } catch {
    return undefined;
  }
}

/** Map points with each point's value of `attribute`, for the points still in the index. */
export function mapData(lookalike: Lookalike, map: MapFile, attribute: string | undefined) {
  const points = map.points.filter((p) => lookalike.has(p.id));
  const values = attribute ? points.map((p) => lookalike.item(p.id).metadata[attribute] ?? '') : undefined;
  return { points, values, attribute, method: 't-SNE' };
}
