/**
 * `lookalike bench --ann` and `bench --synthetic` as processes, on the clustered synthetic
 * index of test/unit/ann.test.ts (the same vectors, drawn the same way).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import { defaultSettings } from '../../src/model/registry.js';
import type { ItemVectors } from '../../src/store/types.js';
import { runCli } from '../helpers/cli.js';
import { centredRandom } from '../helpers/random.js';

// Vectors drawn in clusters (as product photos are: many near-duplicates of a few looks),
// stored in a real SQLite index; search goes through the library as a user's would.
const DIM = 48;
const COLOUR_DIM = 4;

const rng = centredRandom;

const centres = (() => {
  const r = rng(99);
  return Array.from({ length: 60 }, () => Float32Array.from({ length: DIM }, r));
})();

function item(i: number, r: () => number): ItemVectors {
  const c = centres[i % centres.length];
  const max = Float32Array.from(c, (v) => v + 0.25 * r());
  return { id: `p${i}`, max, avg: Float32Array.from(max, (v) => v * 0.5 + 0.1 * r()), colour: Float32Array.from({ length: COLOUR_DIM }, () => r() + 0.5) };
}

function metadataOf(i: number): Record<string, string> {
  // "rare" has exactly 3 items; "half" splits the catalog (a filter ANN answers, above FILTERED_EXACT_MAX).
  return { kind: i === 5 || i === 500 || i === 5000 ? 'rare' : i % 2 ? 'odd' : 'even', group: String(i % 7) };
}

function addItems(dir: string, from: number, to: number, seed: number): void {
  const store = SqliteStore.open(dir, { create: true });
  const r = rng(seed);
  const ids = Array.from({ length: to - from }, (_, j) => from + j);
  store.upsertItems(ids.map((i) => ({ id: `p${i}`, image: `/nowhere/p${i}.jpg`, metadata: metadataOf(i) })));
  store.putVectors(ids.map((i) => item(i, r)));
  store.close();
}

function createIndex(dir: string, n: number, search?: string): void {
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

describe('approximate search (HNSW) over a real index', () => {
  const N = 8000;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-ann-'));
    createIndex(dir, N);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('`bench --ann` prints exact and approximate search side by side, and `bench --synthetic` a fresh serving process\'s figures', () => {
    const ann = runCli(['bench', '--ann', '--index', dir, '--queries', '30', '--json']);
    expect(ann.code, ann.stderr).toBe(0);
    const r = JSON.parse(ann.stdout);
    expect(r.items).toBe(N);
    expect(r.spaces.map((x: { space: string }) => x.space)).toEqual(['backbone:max']);
    expect(r.spaces[0].ann.recallAtK).toBeGreaterThanOrEqual(0.95);
    expect(r.spaces[0].annFromFiles.recallAtK).toBeGreaterThanOrEqual(0.95);
    expect(r.filtered.length).toBe(0); // this catalog has no gender or articleType column
    const synthetic = runCli(['bench', '--synthetic', '3000', '--index', dir, '--queries', '20']);
    expect(synthetic.code, synthetic.stderr).toBe(0);
    expect(synthetic.stdout).toMatch(/synthetic catalog: 3,000 items around 8000 real vectors/);
    expect(synthetic.stdout).toMatch(/recall@10 vs exact\s+1\s+(0\.9\d+|1\.0+)/);
    expect(synthetic.stdout).toMatch(/mean cosine of the 10th neighbour/);
  });
});
