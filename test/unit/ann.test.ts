import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import { Lookalike } from '../../src/lookalike.js';
import { ANN_MIN_ITEMS, FILTERED_EXACT_MAX } from '../../src/search/engine.js';
import { backboneSpace, blendedSpace } from '../../src/search/space.js';
import { addItems, createIndex, DIM, item, rng } from '../helpers/synthetic-index.js';

const ids = (hits: Array<{ id: string }>) => hits.map((h) => h.id);

describe('approximate search (HNSW) over a real index', () => {
  const N = 8000;
  let dir: string;
  let lookalike: Lookalike;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-ann-'));
    createIndex(dir, N);
    lookalike = await Lookalike.open(dir);
  });

  afterAll(async () => {
    await lookalike.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('searches exactly below the size threshold unless told otherwise', async () => {
    expect(N).toBeLessThan(ANN_MIN_ITEMS);
    expect(lookalike.indexView().method()).toBe('exact');
    expect(lookalike.indexView().method('ann')).toBe('ann');
    // A process-wide override (serve --search) beats the index setting; a search's own option beats both.
    const forced = await Lookalike.open(dir, { search: 'ann', readonly: true });
    try {
      expect(forced.indexView().method()).toBe('ann');
      expect(forced.indexView().method('exact')).toBe('exact');
    } finally {
      await forced.close();
    }
    await expect(Lookalike.open(dir, { search: 'fast' as never })).rejects.toMatchObject({ code: 'BAD_OPTION' });
  });

  it('finds the same neighbours as exact search (recall@10 >= 0.99) and shows exact cosines', async () => {
    let found = 0;
    for (let i = 0; i < 100; i++) {
      const id = `p${i * 79}`;
      const exact = await lookalike.searchById(id, { k: 10, search: 'exact' });
      const ann = await lookalike.searchById(id, { k: 10, search: 'ann' });
      expect(ids(ann.results)).not.toContain(id);
      for (const hit of ann.results) {
        const same = exact.results.find((e) => e.id === hit.id);
        if (same) { found++; expect(hit.score).toBeCloseTo(same.score, 6); }
      }
    }
    expect(found / 1000).toBeGreaterThanOrEqual(0.99);
    const status = lookalike.indexView().annStatus(lookalike.space());
    expect(status.meta?.recallAt10).toBeGreaterThanOrEqual(0.99);
    expect(status.current).toBe(true);
    expect(existsSync(status.file!)).toBe(true);
    expect(path.dirname(status.file!)).toBe(dir);
  });

  it('a blended space (the photo blend) searches through its parts\' indexes, with the blend\'s exact scores', async () => {
    const blend = blendedSpace(backboneSpace('max', DIM), backboneSpace('avg', DIM), 0.3);
    const { data } = lookalike.indexView().matrix(blend);
    let found = 0;
    for (let i = 0; i < 50; i++) {
      const r = i * 157;
      const q = data.subarray(r * (2 * DIM), (r + 1) * (2 * DIM));
      const exact = await lookalike.indexView().query(blend, q, { k: 10, search: 'exact' });
      const ann = await lookalike.indexView().query(blend, q, { k: 10, search: 'ann' });
      for (const hit of ann) {
        const same = exact.find((e) => e.id === hit.id);
        if (same) { found++; expect(hit.score).toBeCloseTo(same.score, 5); }
      }
    }
    expect(found / 500).toBeGreaterThanOrEqual(0.98);
    // No graph of the blend's own: only its parts were built.
    expect(lookalike.indexView().annStatus(blend).meta).toBeUndefined();
    expect(lookalike.indexView().annStatus(backboneSpace('avg', DIM)).meta).toBeDefined();
  });

  it('a filter with 3 matching items returns exactly those 3, as exact search does', async () => {
    for (const id of ['p1', 'p2', 'p77']) {
      const exact = await lookalike.searchById(id, { k: 10, filters: { kind: ['rare'] }, search: 'exact' });
      const ann = await lookalike.searchById(id, { k: 10, filters: { kind: ['rare'] }, search: 'ann' });
      expect(ann.results).toHaveLength(3);
      expect(ids(ann.results)).toEqual(ids(exact.results));
    }
  });

  it('a broad filter (answered through the graph) keeps its meaning and its recall', async () => {
    let found = 0;
    for (let i = 0; i < 50; i++) {
      const id = `p${i * 131}`;
      const exact = await lookalike.searchById(id, { k: 10, filters: { kind: ['odd'] }, search: 'exact' });
      const ann = await lookalike.searchById(id, { k: 10, filters: { kind: ['odd'] }, search: 'ann' });
      expect(ann.results).toHaveLength(10);
      expect(ann.results.every((r) => r.metadata.kind === 'odd')).toBe(true);
      found += ann.results.filter((r) => ids(exact.results).includes(r.id)).length;
    }
    expect(N / 2).toBeGreaterThan(FILTERED_EXACT_MAX);
    expect(found / 500).toBeGreaterThanOrEqual(0.99);
  });

  it('a selective filter still returns every match when there are fewer than k', async () => {
    // group=3 and kind=rare: p500 only (500 % 7 = 3).
    const ann = await lookalike.searchById('p1', { k: 10, filters: { kind: ['rare'], group: ['3'] }, search: 'ann' });
    expect(ids(ann.results)).toEqual(['p500']);
  });

  it('thresholds mean the same: only scores above, and everything above when fewer than k', async () => {
    for (const id of ['p3', 'p4242']) {
      const exact = await lookalike.searchById(id, { k: 50, search: 'exact' });
      const threshold = exact.results[20].score;
      const e = await lookalike.searchById(id, { k: 50, threshold, search: 'exact' });
      const a = await lookalike.searchById(id, { k: 50, threshold, search: 'ann' });
      expect(a.results.every((r) => r.score >= threshold)).toBe(true);
      expect(ids(a.results)).toEqual(ids(e.results));
      const none = await lookalike.searchById(id, { k: 10, threshold: 0.9999, search: 'ann' });
      expect(none.results).toEqual([]);
    }
  });
});

describe('the ANN index beside the store', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-ann-inc-'));
    createIndex(dir, 3000, 'ann');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function withIndex<T>(fn: (l: Lookalike) => Promise<T>): Promise<T> {
    const l = await Lookalike.open(dir);
    try {
      return await fn(l);
    } finally {
      await l.close();
    }
  }

  it('follows the index setting, and is loaded, not rebuilt, when the store has not changed', async () => {
    await withIndex(async (l) => {
      expect(l.indexView().method()).toBe('ann');
      await l.searchById('p1');
      expect(l.indexView().lastSync?.added).toBe(3000);
    });
    await withIndex(async (l) => {
      await l.searchById('p1');
      expect(l.indexView().lastSync).toBeUndefined();
      expect(l.indexView().annStatus(l.space()).current).toBe(true);
    });
  });

  it('a reopened index whose ANN files are current searches without the float32 matrix, re-ranking from disk', async () => {
    const before = await withIndex(async (l) => {
      const out: string[][] = [];
      for (const id of ['p2', 'p777', 'p2999']) out.push(ids((await l.searchById(id, { k: 10, search: 'exact' })).results));
      return out;
    });
    await withIndex(async (l) => {
      const got: string[][] = [];
      for (const id of ['p2', 'p777', 'p2999']) {
        const r = await l.searchById(id, { k: 10 });
        for (const hit of r.results) expect(hit.score).toBeLessThanOrEqual(1 + 1e-6);
        got.push(ids(r.results));
      }
      const shared = got.reduce((sum, row, q) => sum + row.filter((id) => before[q].includes(id)).length, 0);
      expect(shared / 30).toBeGreaterThanOrEqual(0.9);
      // A filter with few rows is answered exactly from the rows file too.
      const rare = await l.searchById('p1', { k: 10, filters: { kind: ['rare'] } });
      expect(ids(rare.results).sort()).toEqual(['p5', 'p500']);
      expect(l.indexView().heldSpaces()).toEqual([]);
    });
  });

  it('gives a catalog item\'s vector in a blend (a photo search\'s expansion) from its parts, without the blend\'s matrix', async () => {
    const blend = blendedSpace(backboneSpace('max', DIM), backboneSpace('avg', DIM), 0.3);
    // Both parts' ANN files written, as a server's start-up does for the photo space.
    await withIndex((l) => l.indexView().prepareAnn(blend));
    await withIndex(async (l) => {
      const v = await l.indexView().vectorOfForSearch(blend, 'p777', 'ann');
      expect(l.indexView().heldSpaces()).toEqual([]);
      const row = l.indexView().vectorOf(blend, 'p777');
      expect(v).toHaveLength(row.length);
      for (let i = 0; i < row.length; i++) expect(v[i]).toBeCloseTo(row[i], 6);
    });
  });

  it('two builds of the same catalog answer alike (small syncs insert on one thread)', async () => {
    const queries = await withIndex(async (l) => Array.from({ length: 40 }, (_, q) => Float32Array.from(l.indexView().vectorOf(l.space(), `p${q * 71}`))));
    const answers: string[][][] = [];
    const graphs: string[] = [];
    for (let build = 0; build < 2; build++) {
      const copy = mkdtempSync(path.join(os.tmpdir(), 'lookalike-ann-twice-'));
      try {
        createIndex(copy, 3000, 'ann');
        const l = await Lookalike.open(copy);
        try {
          const got: string[][] = [];
          for (const q of queries) got.push(ids(await l.indexView().query(l.space(), q, { k: 10, search: 'ann' })));
          answers.push(got);
          // The graph itself, not only these answers: the same file, byte for byte.
          graphs.push(createHash('sha256').update(readFileSync(l.indexView().annStatus(l.space()).file!)).digest('hex'));
        } finally {
          await l.close();
        }
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    }
    expect(answers[1]).toEqual(answers[0]);
    expect(graphs[1]).toBe(graphs[0]);
  });

  it('adds new items incrementally: searches find them', async () => {
    addItems(dir, 3000, 3100, 7);
    await withIndex(async (l) => {
      const space = l.space();
      for (let i = 3000; i < 3100; i += 9) {
        const hits = await l.indexView().query(space, l.indexView().vectorOf(space, `p${i}`), { k: 1, search: 'ann' });
        expect(hits[0].id).toBe(`p${i}`);
      }
      expect(l.indexView().lastSync).toMatchObject({ added: 100, removed: 0, replaced: 0 });
    });
  });

  it('removes deleted items incrementally: searches never return them', async () => {
    const removed = Array.from({ length: 200 }, (_, j) => `p${j * 13}`);
    const store = SqliteStore.open(dir);
    const queries = await withIndex(async (l) => removed.slice(0, 40).map((id) => Float32Array.from(l.indexView().vectorOf(l.space(), id))));
    store.deleteItems(removed);
    store.close();
    await withIndex(async (l) => {
      const gone = new Set(removed);
      for (const q of queries) {
        const hits = await l.indexView().query(l.space(), q, { k: 20, search: 'ann' });
        expect(hits).toHaveLength(20);
        expect(hits.some((h) => gone.has(h.id))).toBe(false);
      }
      expect(l.indexView().lastSync).toMatchObject({ added: 0, removed: 200 });
    });
  });

  it('replaces an item whose vector changed (re-embedded photo)', async () => {
    const store = SqliteStore.open(dir);
    const moved = item(31, rng(5)); // p1's new look: a vector from another cluster
    moved.id = 'p1';
    store.putVectors([moved]);
    store.close();
    await withIndex(async (l) => {
      const space = l.space();
      const hits = await l.indexView().query(space, l.indexView().vectorOf(space, 'p1'), { k: 1, search: 'ann' });
      expect(hits[0].id).toBe('p1');
      expect(hits[0].score).toBeCloseTo(1, 5);
      expect(l.indexView().lastSync).toMatchObject({ added: 1, replaced: 1 });
    });
  });
});
