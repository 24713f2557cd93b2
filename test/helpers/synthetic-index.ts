/**
 * A synthetic index for the search tests: vectors drawn in clusters (as product photos are:
 * many near-duplicates of a few looks), stored in a real SQLite index, so that search goes
 * through the library as a user's would. test/unit/ann.test.ts and
 * test/integration/ann-bench.test.ts share it (the same vectors, drawn the same way).
 */
import { SqliteStore } from '../../src/store/sqlite.js';
import { defaultSettings } from '../../src/model/registry.js';
import type { ItemVectors } from '../../src/store/types.js';
import { centredRandom } from './random.js';

export const DIM = 48;
const COLOUR_DIM = 4;

export const rng = centredRandom;

const centres = (() => {
  const r = rng(99);
  return Array.from({ length: 60 }, () => Float32Array.from({ length: DIM }, r));
})();

export function item(i: number, r: () => number): ItemVectors {
  const c = centres[i % centres.length];
  const max = Float32Array.from(c, (v) => v + 0.25 * r());
  return { id: `p${i}`, max, avg: Float32Array.from(max, (v) => v * 0.5 + 0.1 * r()), colour: Float32Array.from({ length: COLOUR_DIM }, () => r() + 0.5) };
}

function metadataOf(i: number): Record<string, string> {
  // "rare" has exactly 3 items; "half" splits the catalog (a filter ANN answers, above FILTERED_EXACT_MAX).
  return { kind: i === 5 || i === 500 || i === 5000 ? 'rare' : i % 2 ? 'odd' : 'even', group: String(i % 7) };
}

export function addItems(dir: string, from: number, to: number, seed: number): void {
  const store = SqliteStore.open(dir, { create: true });
  const r = rng(seed);
  const ids = Array.from({ length: to - from }, (_, j) => from + j);
  store.upsertItems(ids.map((i) => ({ id: `p${i}`, image: `/nowhere/p${i}.jpg`, metadata: metadataOf(i) })));
  store.putVectors(ids.map((i) => item(i, r)));
  store.close();
}

export function createIndex(dir: string, n: number, search?: string): void {
  const store = SqliteStore.open(dir, { create: true });
  const now = new Date().toISOString();
  store.setManifest({
    formatVersion: 1, settings: defaultSettings(), weightsId: 'synthetic', dimension: DIM, colourDimension: COLOUR_DIM,
    catalog: { root: '/nowhere', kind: 'image-folder', columns: ['kind', 'group'] }, createdAt: now, updatedAt: now,
    extensions: search ? { search } : undefined,
  });
  store.close();
  addItems(dir, 0, n, 1);
}
