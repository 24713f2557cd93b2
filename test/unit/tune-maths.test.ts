import { describe, expect, it } from 'vitest';
import { stratifiedSample } from '../../src/catalog/sample.js';
import { fitForSizes, projectNormalised } from '../../src/lab/tune/reduce.js';
import { suggestThreshold } from '../../src/lab/eval/evaluate.js';
import { projectPca } from '../../src/math/pca.js';
import { normaliseRows } from '../../src/search/kernel.js';
import { Random } from '../../src/math/random.js';

describe('stratified samples', () => {
  const items = [
    ...Array.from({ length: 60 }, (_, i) => ({ id: `t${i}`, value: 'Tshirts' })),
    ...Array.from({ length: 30 }, (_, i) => ({ id: `w${i}`, value: 'Watches' })),
    ...Array.from({ length: 10 }, (_, i) => ({ id: `b${i}`, value: 'Bags' })),
  ];

  it('keep each class in proportion and always pick the same ids', () => {
    const sample = stratifiedSample(items, 20);
    expect(sample).toHaveLength(20);
    expect(sample.filter((id) => id.startsWith('t'))).toHaveLength(12);
    expect(sample.filter((id) => id.startsWith('w'))).toHaveLength(6);
    expect(sample.filter((id) => id.startsWith('b'))).toHaveLength(2);
    expect(stratifiedSample([...items].reverse(), 20).sort()).toEqual([...sample].sort());
  });

  it('take everything when the sample is as large as the catalog', () => {
    expect(stratifiedSample(items, 500)).toHaveLength(100);
  });
});

describe('threshold suggestion', () => {
  it('picks the lowest threshold whose kept neighbours are still precise enough', () => {
    // Sorted by score: 0.9 s, 0.8 s, 0.7 d, 0.6 s, 0.5 d, 0.4 d -> precision 1, 1, .67, .75, .6, .5
    const r = suggestThreshold([0.9, 0.8, 0.6], [0.7, 0.5, 0.4], 0.75);
    expect(r.suggested).toBeCloseTo(0.6, 6);
    expect(r.precisionAtSuggested).toBeCloseTo(0.75, 6);
    expect(r.keptAtSuggested).toBeCloseTo(4 / 6, 6);
    expect(suggestThreshold([0.5], [0.9], 0.9).suggested).toBeUndefined();
  });
});

describe('PCA projection for the size sweep', () => {
  it('matches the PCA library\'s projection, normalised', async () => {
    const rng = new Random(3);
    const n = 300, d = 64;
    const data = new Float32Array(n * d).map(() => rng.normal() * rng.next() + 2);
    const pca = fitForSizes(data, n, d, [16, 8])!;
    expect(pca.k).toBe(16);
    const ours = await projectNormalised(pca, data, n, 8);
    const full = projectPca(pca, data, n);
    const first8 = new Float32Array(n * 8);
    for (let i = 0; i < n; i++) first8.set(full.subarray(i * 16, i * 16 + 8), i * 8);
    normaliseRows(first8, 8);
    for (let i = 0; i < n * 8; i++) expect(ours[i]).toBeCloseTo(first8[i], 4);
  });
});
