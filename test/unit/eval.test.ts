import { describe, expect, it } from 'vitest';
import { evaluate, findNeighbours, scoreAttribute } from '../../src/lab/eval/evaluate.js';
import { isHeldOut } from '../../src/catalog/split.js';
import { batchTopK, normaliseRows } from '../../src/search/kernel.js';
import { leaveOneOutTopK } from '../../src/lab/eval/all-pairs.js';
import { Random } from '../../src/math/random.js';

/** Clustered unit vectors: each class has a centre, items are noisy copies of it. */
function clustered(n: number, dim: number, classes: number, noise: number, seed = 1) {
  const rng = new Random(seed);
  const centres = Array.from({ length: classes }, () => Float32Array.from({ length: dim }, () => rng.normal()));
  const data = new Float32Array(n * dim);
  const labels: string[] = [];
  const colours: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    for (let j = 0; j < dim; j++) data[i * dim + j] = centres[c][j] + noise * rng.normal();
    labels.push(`class${c}`);
    colours.push(i % 7 === 0 ? '' : `colour${(i * 13) % 4}`);
  }
  return { data: normaliseRows(data, dim), labels, colours, ids: Array.from({ length: n }, (_, i) => String(1000 + i)) };
}

/** Plain reference: full sort per query, written for clarity rather than speed. */
function reference(data: Float32Array, dim: number, ids: string[], labels: string[], k: number, fraction?: number) {
  const n = ids.length;
  const isQuery = (r: number) => (fraction === undefined ? true : isHeldOut(ids[r], fraction));
  const isCandidate = (r: number) => (fraction === undefined ? true : !isHeldOut(ids[r], fraction));
  let queries = 0, p1 = 0, pk = 0, apSum = 0, apCount = 0, correct = 0;
  for (let q = 0; q < n; q++) {
    if (!isQuery(q) || !labels[q]) continue;
    queries++;
    const scored: Array<{ r: number; s: number }> = [];
    for (let r = 0; r < n; r++) {
      if (r === q || !isCandidate(r)) continue;
      let s = 0;
      for (let j = 0; j < dim; j++) s += data[q * dim + j] * data[r * dim + j];
      scored.push({ r, s });
    }
    scored.sort((a, b) => b.s - a.s);
    const top = scored.slice(0, k);
    const rel = top.map((h) => labels[h.r] === labels[q]);
    p1 += rel[0] ? 1 : 0;
    pk += rel.filter(Boolean).length / k;
    const relevantTotal = scored.filter((h) => labels[h.r] === labels[q]).length;
    if (relevantTotal) {
      let hits = 0, ap = 0;
      rel.forEach((x, i) => { if (x) { hits++; ap += hits / (i + 1); } });
      apSum += ap / Math.min(k, relevantTotal);
      apCount++;
    }
    const votes = new Map<string, { c: number; s: number }>();
    for (const h of top) {
      const v = labels[h.r];
      if (!v) continue;
      const e = votes.get(v) ?? { c: 0, s: 0 };
      e.c++; e.s += h.s;
      votes.set(v, e);
    }
    const best = [...votes].sort((a, b) => b[1].c - a[1].c || b[1].s - a[1].s)[0]?.[0];
    if (best === labels[q]) correct++;
  }
  return { queries, p1: p1 / queries, pk: pk / queries, map: apSum / apCount, acc: correct / queries };
}

describe('evaluate', () => {
  it('gives the hand-computed metrics on a four-item example', async () => {
    // Rows 0,1 are class a and rows 2,3 class b; row 1 sits closer to row 2 than to row 0.
    const data = new Float32Array([1, 0, 0.8, 0.6, 0.6, 0.8, 0, 1]);
    const result = await evaluate({ matrix: data, dim: 2, ids: ['1', '2', '3', '4'], labels: { type: ['a', 'a', 'b', 'b'] }, k: 2 });
    const r = result.attributes[0];
    expect(result.protocol).toBe('leave-one-out');
    expect(r.queries).toBe(4);
    expect(r.precisionAt1).toBeCloseTo(0.5, 6);
    expect(r.precisionAtK).toBeCloseTo(0.5, 6);
    expect(r.mapAtK).toBeCloseTo(0.75, 6);
    expect(r.knnAccuracy).toBeCloseTo(0.5, 6); // query 0 votes a:1 b:1, a wins on summed score (0.8 > 0.6)
    expect(r.macroF1).toBeCloseTo(0.5, 6);
    expect(r.perClass.map((c) => [c.value, c.support, c.knnPrecision, c.knnRecall])).toEqual([['a', 2, 0.5, 0.5], ['b', 2, 0.5, 0.5]]);
    expect(r.confusion).toEqual({ labels: ['a', 'b'], counts: [[1, 1], [1, 1]] });
  });

  it('matches a full-sort reference in leave-one-out and held-out protocols', async () => {
    const { data, labels, colours, ids } = clustered(600, 24, 6, 1.6);
    for (const fraction of [undefined, 0.25]) {
      const result = await evaluate({ matrix: data, dim: 24, ids, labels: { type: labels, colour: colours }, k: 5, queries: fraction });
      for (const [attr, values] of [['type', labels], ['colour', colours]] as const) {
        const ref = reference(data, 24, ids, values, 5, fraction);
        const got = result.attributes.find((a) => a.attribute === attr)!;
        expect(got.queries).toBe(ref.queries);
        expect(got.precisionAt1).toBeCloseTo(ref.p1, 5);
        expect(got.precisionAtK).toBeCloseTo(ref.pk, 5);
        expect(got.mapAtK).toBeCloseTo(ref.map, 5);
        expect(got.knnAccuracy).toBeCloseTo(ref.acc, 5);
      }
    }
  });

  it('held-out queries only find candidates outside the held-out share', async () => {
    const { data, labels, ids } = clustered(400, 16, 4, 1);
    const nb = await findNeighbours(data, 16, ids, 10, { queries: 0.3 });
    expect(nb.protocol).toBe('held-out');
    const held = ids.map((id) => isHeldOut(id, 0.3));
    expect(nb.queryRows.length).toBe(held.filter(Boolean).length);
    for (const r of nb.queryRows) expect(held[r]).toBe(true);
    for (const r of nb.rows) expect(held[r]).toBe(false);
    const result = scoreAttribute(nb, 'type', labels, 10);
    expect(result.queries).toBe(nb.queryRows.length);
  });

  it('leaves items with an empty value out of the queries but keeps them as candidates', async () => {
    const data = normaliseRows(new Float32Array([1, 0, 0.9, 0.1, 0, 1, 0.1, 0.9]), 2);
    const result = await evaluate({ matrix: data, dim: 2, ids: ['a', 'b', 'c', 'd'], labels: { type: ['x', '', 'y', 'y'] }, k: 1 });
    const r = result.attributes[0];
    expect(r.queries).toBe(3);
    // "a" finds "b" (no value): a miss; "c" and "d" find each other.
    expect(r.precisionAt1).toBeCloseTo(2 / 3, 6);
    // "x" has no other member: no relevant candidate, so it is outside the mAP mean.
    expect(r.mapQueries).toBe(2);
    expect(r.mapAtK).toBeCloseTo(1, 6);
  });

  it('scores any smaller k from one search', async () => {
    const { data, labels, ids } = clustered(300, 16, 5, 1.4, 3);
    const nb = await findNeighbours(data, 16, ids, 20);
    for (const k of [1, 5, 20]) {
      const once = scoreAttribute(nb, 'type', labels, k);
      const direct = (await evaluate({ matrix: data, dim: 16, ids, labels: { type: labels }, k })).attributes[0];
      expect(once.precisionAtK).toBeCloseTo(direct.precisionAtK, 6);
      expect(once.mapAtK).toBeCloseTo(direct.mapAtK, 6);
    }
  });

  it('puts predictions outside the most frequent classes in an (other) column', async () => {
    const { data, labels, ids } = clustered(240, 8, 12, 2.5, 5);
    const r = (await evaluate({ matrix: data, dim: 8, ids, labels: { type: labels }, k: 5, confusionClasses: 3 })).attributes[0];
    expect(r.confusion.labels.length).toBe(4);
    expect(r.confusion.labels[3]).toBe('(other)');
    const rowTotals = r.confusion.counts.map((row) => row.reduce((a, b) => a + b, 0));
    expect(rowTotals).toEqual(r.perClass.slice(0, 3).map((c) => c.support));
  });

  it('refuses a held-out share outside (0, 1)', async () => {
    const { data, ids } = clustered(20, 4, 2, 1);
    await expect(findNeighbours(data, 4, ids, 3, { queries: 1.5 })).rejects.toMatchObject({ code: 'BAD_OPTION' });
  });
});

describe('leave-one-out top-k over the symmetric half', () => {
  it('finds the same neighbours as the plain batched search, whatever the block size', async () => {
    const { data, ids } = clustered(523, 24, 7, 1.3, 11);
    const self = new Int32Array(ids.length).map((_, i) => i);
    const plain = await batchTopK(data, 24, data, ids.length, 6, { excludeSelf: self });
    for (const blockSize of [64, 100, 523, 1000]) {
      const half = await leaveOneOutTopK(data, 24, 6, { blockSize });
      expect(half.k).toBe(6);
      expect(Array.from(half.rows)).toEqual(Array.from(plain.rows));
      for (let i = 0; i < half.scores.length; i++) expect(half.scores[i]).toBeCloseTo(plain.scores[i], 5);
    }
  });

  it('handles tiny catalogs', async () => {
    const data = normaliseRows(new Float32Array([1, 0, 0, 1, 1, 1]), 2);
    const hits = await leaveOneOutTopK(data, 2, 5);
    expect(hits.k).toBe(2);
    expect(Array.from(hits.rows)).toEqual([2, 1, 2, 0, 0, 1]);
  });
});
