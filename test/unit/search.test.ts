import { describe, expect, it } from 'vitest';
import { batchTopK, normaliseRows, topK, topKAsync } from '../../src/search/kernel.js';
import { filterMask, parseFilters } from '../../src/search/filters.js';
import { isLookalikeError } from '../../src/errors.js';

function randomMatrix(n: number, dim: number, seed = 1): Float32Array {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) - 0.5;
  return normaliseRows(Float32Array.from({ length: n * dim }, rnd), dim);
}

function bruteForce(m: Float32Array, dim: number, q: Float32Array, k: number, keep: (row: number, score: number) => boolean) {
  const scores: Array<{ row: number; score: number }> = [];
  for (let r = 0; r < m.length / dim; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += m[r * dim + j] * q[j];
    if (keep(r, s)) scores.push({ row: r, score: s });
  }
  return scores.sort((a, b) => b.score - a.score).slice(0, k);
}

describe('exact cosine top-k', () => {
  const dim = 37; // not a multiple of 4: exercises the unrolled loop's tail
  const m = randomMatrix(500, dim);
  const q = m.slice(7 * dim, 8 * dim);

  it('normalises rows to unit length and leaves zero rows at zero', () => {
    const v = normaliseRows(Float32Array.from([3, 4, 0, 0]), 2);
    expect(v[0]).toBeCloseTo(0.6, 6);
    expect(v[1]).toBeCloseTo(0.8, 6);
    expect([v[2], v[3]]).toEqual([0, 0]);
  });

  it('returns the same ranking as a brute-force sort', () => {
    const hits = topK(m, dim, q, { k: 10 });
    const expected = bruteForce(m, dim, q, 10, () => true);
    expect(hits.map((h) => h.row)).toEqual(expected.map((e) => e.row));
    expect(hits[0]).toMatchObject({ row: 7 });
    expect(hits[0].score).toBeCloseTo(1, 5);
  });

  it('excludes the query item, applies the mask and the threshold', () => {
    const mask = new Uint8Array(500).map((_, r) => (r % 3 === 0 ? 1 : 0));
    const hits = topK(m, dim, q, { k: 8, exclude: 7, mask, threshold: 0.05 });
    const expected = bruteForce(m, dim, q, 8, (r, s) => r !== 7 && r % 3 === 0 && s >= 0.05);
    expect(hits.map((h) => h.row)).toEqual(expected.map((e) => e.row));
    expect(hits.every((h) => h.score >= 0.05 && h.row % 3 === 0 && h.row !== 7)).toBe(true);
  });

  it('returns fewer results when few pass the threshold, and none for k larger than the catalog', () => {
    expect(topK(m, dim, q, { k: 10, threshold: 0.99 }).map((h) => h.row)).toEqual([7]);
    expect(topK(m, dim, q, { k: 1000 })).toHaveLength(500);
  });

  it('scores large catalogs with onnxruntime and ranks exactly like the JavaScript kernel', async () => {
    const bigDim = 2048, n = 2100; // above the size where onnxruntime takes over
    const big = randomMatrix(n, bigDim, 7);
    const query = big.slice(3 * bigDim, 4 * bigDim);
    const mask = new Uint8Array(n).map((_, r) => (r % 2 ? 1 : 0));
    for (const opts of [{ k: 10 }, { k: 10, exclude: 3, mask, threshold: 0.01 }]) {
      const fast = await topKAsync(big, bigDim, query, opts);
      const plain = topK(big, bigDim, query, opts);
      expect(fast.map((h) => h.row)).toEqual(plain.map((h) => h.row));
      fast.forEach((h, i) => expect(h.score).toBeCloseTo(plain[i].score, 4));
    }
  });

  it('answers many queries at once like one query at a time, leaving each query out', async () => {
    const nq = 40;
    const queries = m.slice(0, nq * dim);
    const self = Int32Array.from({ length: nq }, (_, i) => i);
    const batch = await batchTopK(m, dim, queries, nq, 5, { excludeSelf: self, blockSize: 16 });
    expect(batch.k).toBe(5);
    for (let i = 0; i < nq; i++) {
      const single = topK(m, dim, queries.subarray(i * dim, (i + 1) * dim), { k: 5, exclude: i });
      expect(Array.from(batch.rows.subarray(i * 5, i * 5 + 5))).toEqual(single.map((h) => h.row));
      expect(batch.scores[i * 5]).toBeCloseTo(single[0].score, 4);
    }
  });
});

describe('metadata filters', () => {
  const rows = [
    { gender: 'Men', articleType: 'Shirts' },
    { gender: 'Women', articleType: 'Shirts' },
    { gender: 'Women', articleType: 'Tshirts' },
    { gender: 'Women', articleType: 'Watches' },
  ];
  const columns = ['gender', 'articleType'];

  it('parses field=value pairs, with alternatives and case-insensitive field names', () => {
    expect(parseFilters(['Gender=Women', 'articleType=Shirts,Tshirts'], columns)).toEqual({ gender: ['Women'], articleType: ['Shirts', 'Tshirts'] });
  });

  it('keeps rows that match every field and any of its values, ignoring case', () => {
    const mask = filterMask(rows, { gender: ['women'], articleType: ['Shirts', 'Tshirts'] }, columns)!;
    expect(Array.from(mask)).toEqual([0, 1, 1, 0]);
    expect(filterMask(rows, {}, columns)).toBeUndefined();
  });

  it('refuses malformed filters and unknown fields with codes', () => {
    for (const [spec, code] of [['gender', 'BAD_FILTER'], ['=x', 'BAD_FILTER'], ['colour=Red', 'UNKNOWN_FILTER_FIELD']] as const) {
      try {
        parseFilters([spec], columns);
        expect.unreachable();
      } catch (err) {
        expect(isLookalikeError(err, code)).toBe(true);
      }
    }
  });
});
