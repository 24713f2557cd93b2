import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { evaluateIndex } from '../../src/lab/eval/evaluate-index.js';
import { computeMap, readMapFile } from '../../src/lab/viz/map.js';
import { defaultItems, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

let indexDir: string;

beforeAll(async () => {
  const catalog = await makeCatalog(defaultItems());
  indexDir = path.join(tempDir(), 'index');
  await buildIndex({ catalogDir: catalog, indexDir, batchSize: 8 });
});

describe('lookalike eval', () => {
  it('prints a table of metrics per attribute and the time it took', () => {
    const r = runCli(['eval', '--index', indexDir, '-k', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('leave-one-out: each of the 16 items queries the other 15, k=3');
    expect(r.stdout).toMatch(/attribute\s+queries\s+classes\s+precision@1\s+precision@3\s+mAP@3/);
    for (const attr of ['articleType', 'subCategory', 'masterCategory', 'gender', 'baseColour', 'usage']) expect(r.stdout).toMatch(new RegExp(`^${attr}\\s+16\\s`, 'm'));
    expect(r.stdout).toMatch(/evaluated 16 queries in [\d.]+ s/);
  });

  it('evaluates held-out queries against the rest, as JSON', () => {
    const r = runCli(['eval', '--index', indexDir, '--attr', 'articleType', '--attr', 'baseColour', '--queries', '0.5', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.protocol).toBe('held-out');
    expect(result.queries + result.candidates).toBe(16);
    expect(result.attributes.map((a: { attribute: string }) => a.attribute)).toEqual(['articleType', 'baseColour']);
    expect(result.attributes[0].perClass.length).toBeGreaterThan(0);
    expect(result.attributes[0].confusion.labels.length).toBeGreaterThan(0);
  });

  it('refuses an attribute the catalog does not have, naming the columns', () => {
    const r = runCli(['eval', '--index', indexDir, '--attr', 'colour']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown attribute "colour"');
    expect(r.stderr).toContain('articleType');
  });

  it('passes pooling and mode through to the index\'s search space', async () => {
    const lookalike = await Lookalike.open(indexDir);
    try {
      const avg = await evaluateIndex(lookalike, { pooling: 'avg', k: 3 });
      expect(avg.space).toBe('backbone:avg');
      const plain = await evaluateIndex(lookalike, { k: 3 });
      expect(plain.space).toBe(lookalike.space().id);
    } finally {
      await lookalike.close();
    }
  });

  it('writes a report folder with charts and CSV tables', () => {
    const dir = path.join(tempDir(), 'report');
    const r = runCli(['eval', '--index', indexDir, '-k', '3', '--report', dir]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['index.html', 'metrics.csv', 'per-class-articleType.csv', 'confusion-gender.csv', 'charts/category-masterCategory.svg', 'charts/per-class-articleType.png', 'charts/scores-articleType.png']) {
      expect(existsSync(path.join(dir, f)), f).toBe(true);
    }
  });
});

describe('lookalike map', () => {
  it('writes map.json into the index and the map as PNG and SVG', async () => {
    const index = path.join(tempDir(), 'index');
    const catalog = await makeCatalog(defaultItems());
    await buildIndex({ catalogDir: catalog, indexDir: index, batchSize: 8 });
    const out = path.join(tempDir(), 'maps');
    const r = runCli(['map', '--index', index, '--color', 'baseColour', '--out', out, '--iterations', '300']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/mapped 16 items .* in [\d.]+ s/);
    expect(r.stdout).toMatch(/PCA to \d+ [\d.]+ s, t-SNE neighbours [\d.]+ s, affinities [\d.]+ s, optimisation [\d.]+ s/);
    const map = JSON.parse(readFileSync(path.join(index, 'map.json'), 'utf8'));
    expect(map.method).toBe('tsne');
    expect(map.attribute).toBe('baseColour');
    expect(new Date(map.createdAt).getTime()).toBeGreaterThan(0);
    expect(map.points).toHaveLength(16);
    for (const p of map.points) {
      expect(typeof p.id).toBe('string');
      expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
    }
    expect(readFileSync(path.join(out, 'map-baseColour.png')).length).toBeGreaterThan(1000);
    expect(readFileSync(path.join(out, 'map-baseColour.svg'), 'utf8')).toContain('<svg');
    const bad = runCli(['map', '--index', index, '--color', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown attribute "nope"');
  });

  it('maps a sample, reproducibly for a seed', async () => {
    const lookalike = await Lookalike.open(indexDir);
    try {
      const a = await computeMap(lookalike, { sample: 10, iterations: 250, seed: 3 });
      const b = await computeMap(lookalike, { sample: 10, iterations: 250, seed: 3 });
      expect(a.map.points).toHaveLength(10);
      expect(a.map.points).toEqual(b.map.points);
      expect(a.map.indexItems).toBe(16);
      expect(await readMapFile(tempDir())).toBeUndefined();
    } finally {
      await lookalike.close();
    }
  });
});
