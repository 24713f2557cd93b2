import { afterEach, describe, expect, it, vi } from 'vitest';
import { SearchEngine } from '../../src/search/engine.js';
import { ExactSearcher } from '../../src/search/exact-searcher.js';
import { AnnSearcher } from '../../src/search/ann-searcher.js';
import { DbSearcher } from '../../src/search/db-searcher.js';
import { ItemTable } from '../../src/search/items.js';
import { backboneSpace, blendedSpace } from '../../src/search/space.js';
import type { Searcher } from '../../src/search/searcher.js';
import type { DbSearchOptions, Store, StoredItem, VectorKind } from '../../src/store/types.js';
import { centredRandom } from '../helpers/random.js';

// The search strategies through their public interface, over an in-memory store: no
// model, no files (the ANN index is built in memory), no service.
const DIM = 24;
const N = 600;

function fakeStore(n: number, extra: Partial<Store> = {}): Store {
  const r = centredRandom(7);
  const centres = Array.from({ length: 30 }, () => Float32Array.from({ length: DIM }, r));
  const rows = (dim: number, at: (i: number, j: number) => number) => Float32Array.from({ length: n * dim }, (_, x) => at(Math.floor(x / dim), x % dim));
  const max = rows(DIM, (i, j) => centres[i % centres.length][j] + 0.3 * r());
  const matrices: Record<VectorKind, { data: Float32Array; dim: number }> = {
    max: { data: max, dim: DIM },
    avg: { data: rows(DIM, (i, j) => 0.5 * max[i * DIM + j] + 0.2 * r()), dim: DIM },
    colour: { data: rows(4, () => r() + 0.5), dim: 4 },
  };
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const items: StoredItem[] = ids.map((id, i) => ({ id, image: `/nowhere/${id}.jpg`, metadata: { kind: i % 50 === 0 ? 'rare' : i % 2 ? 'odd' : 'even' } }));
  return {
    generation: () => 1,
    listItems: () => items,
    loadMatrix: (kind: VectorKind) => ({ ids, ...matrices[kind] }),
    ...extra,
  } as unknown as Store;
}

const space = backboneSpace('max', DIM);
const ids = (hits: Array<{ id: string }>) => hits.map((h) => h.id);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('search strategies', () => {
  it('exact and ANN agree on a small random set, with the same exact scores', async () => {
    const engine = new SearchEngine(fakeStore(N), ['kind']);
    const exact = engine.searcher(space, 'exact');
    const ann = engine.searcher(space, 'ann');
    expect(exact).toBeInstanceOf(ExactSearcher);
    expect(ann).toBeInstanceOf(AnnSearcher);
    let same = 0, total = 0;
    for (let i = 0; i < 60; i++) {
      const query = engine.vectorOf(space, `p${i * 9}`);
      const truth = await exact.search(query, { k: 10, excludeId: `p${i * 9}` });
      const found = await ann.search(query, { k: 10, excludeId: `p${i * 9}` });
      expect(found.map((h) => h.row)).not.toContain(i * 9);
      for (const hit of found) {
        const match = truth.find((t) => t.row === hit.row);
        if (match) { same++; expect(hit.score).toBeCloseTo(match.score, 6); }
      }
      total += truth.length;
    }
    expect(same / total).toBeGreaterThanOrEqual(0.97);
    // A filter leaving few rows is answered exactly: the same list, in the same order.
    const query = engine.vectorOf(space, 'p3');
    const filtered = { k: 5, filters: { kind: ['rare'] } };
    expect(await ann.search(query, filtered)).toEqual(await exact.search(query, filtered));
    // A threshold keeps its meaning through the graph.
    const above = await ann.search(query, { k: 50, threshold: 0.9 });
    expect(above.every((h) => h.score >= 0.9)).toBe(true);
    expect(above.map((h) => h.row)).toEqual((await exact.search(query, { k: 50, threshold: 0.9 })).map((h) => h.row).slice(0, above.length));
    await engine.close();
  });

  it('a blended space searches through its parts\' graphs and reads its vectors from them, as exact search does', async () => {
    const engine = new SearchEngine(fakeStore(N), ['kind']);
    const blend = blendedSpace(space, backboneSpace('avg', DIM), 0.3);
    const fromAnn = await engine.vectorOfForSearch(blend, 'p11', 'ann');
    expect(engine.heldSpaces()).not.toContain(blend.id); // put together from the parts' vectors
    const fromMatrix = await engine.vectorOfForSearch(blend, 'p11', 'exact');
    fromAnn.forEach((v, i) => expect(v).toBeCloseTo(fromMatrix[i], 6));
    const exact = await engine.searcher(blend, 'exact').search(fromMatrix, { k: 10 });
    const ann = await engine.searcher(blend, 'ann').search(fromMatrix, { k: 10 });
    expect(ann[0]).toEqual(exact[0]);
    expect(ann.filter((h) => exact.some((e) => e.row === h.row)).length).toBeGreaterThanOrEqual(9);
    await engine.close();
  });

  it('chooses the strategy once per space and method: every query goes to the same searcher', async () => {
    const used = new Set<Searcher>();
    const exactSearch = vi.spyOn(ExactSearcher.prototype, 'search').mockImplementation(function (this: ExactSearcher) { used.add(this); return Promise.resolve([]); });
    const annSearch = vi.spyOn(AnnSearcher.prototype, 'search');
    const engine = new SearchEngine(fakeStore(N), ['kind'], { search: 'exact' });
    const query = engine.vectorOf(space, 'p1');
    for (let i = 0; i < 20; i++) await engine.find(space, query, { k: 5 });
    for (let i = 0; i < 5; i++) await engine.query(space, query, { k: 5, search: 'auto' });
    expect(exactSearch).toHaveBeenCalledTimes(25);
    expect(used.size).toBe(1);
    expect(annSearch).not.toHaveBeenCalled();
    expect(engine.searcher(space)).toBe([...used][0]);
    // Another space, or a search naming another method, gets its own searcher, also made once.
    expect(engine.searcher(backboneSpace('avg', DIM))).not.toBe(engine.searcher(space));
    expect(engine.searcher(space, 'ann')).toBe(engine.searcher(space, 'ann'));
    await engine.close();
  });

  it('takes the method from the setting, else by size, once when the engine opens', () => {
    const small = new SearchEngine(fakeStore(N), ['kind']);
    expect(small.method()).toBe('exact');
    expect(small.searcher(space)).toBeInstanceOf(ExactSearcher);
    expect(small.searcher(space, 'ann')).toBeInstanceOf(AnnSearcher);
    // The library's door takes a setting in any case; this engine has always searched those exactly.
    expect(small.searcher(space, 'ANN' as never)).toBeInstanceOf(ExactSearcher);
    const forced = new SearchEngine(fakeStore(N), ['kind'], { search: 'ann' });
    expect(forced.method()).toBe('ann');
    expect(forced.method('auto')).toBe('ann');
    expect(forced.searcher(space)).toBeInstanceOf(AnnSearcher);
    expect(forced.searcher(space, 'exact')).toBeInstanceOf(ExactSearcher);
    expect(forced.searcher(space, 'db')).toBeInstanceOf(DbSearcher);
  });

  it('the database searcher hands the request to the store and keeps the rows the table holds', async () => {
    const asked: DbSearchOptions[] = [];
    const store = fakeStore(N, {
      canSearch: true,
      searchVectors: (_query: Float32Array, options: DbSearchOptions) => {
        asked.push(options);
        return Promise.resolve([{ id: 'p4', score: 0.9 }, { id: 'unknown', score: 0.8 }, { id: 'p2', score: 0.7 }]);
      },
    });
    const engine = new SearchEngine(store, ['kind'], { search: 'db' });
    const hits = await engine.find(space, engine.vectorOf(space, 'p1'), { k: 3, threshold: 0.5, filters: { kind: ['even'] }, excludeIds: ['p1'] });
    expect(ids(hits)).toEqual(['p4', 'p2']);
    expect(hits.map((h) => h.rank)).toEqual([1, 2]);
    expect(asked).toEqual([{ k: 3, threshold: 0.5, filters: { kind: ['even'] }, excludeId: 'p1', text: undefined }]);
    await expect(engine.find(backboneSpace('avg', DIM), engine.vectorOf(space, 'p1'))).rejects.toMatchObject({ code: 'BAD_OPTION' });
    const plain = new SearchEngine(fakeStore(N), ['kind'], { search: 'db' });
    await expect(plain.find(space, plain.vectorOf(space, 'p1'))).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringMatching(/needs an index in PostgreSQL/) });
  });
});

describe('item table', () => {
  const items: StoredItem[] = ['a', 'b', 'c', 'd'].map((id, i) => ({ id, image: `/x/${id}.jpg`, metadata: { colour: i % 2 ? 'Red' : 'Blue' } }));

  it('masks rows by filters and words without changing the remembered filter mask', () => {
    const table = new ItemTable(items, ['colour']);
    const blue = table.maskOf({ colour: ['blue'] });
    expect([...blue!]).toEqual([1, 0, 1, 0]);
    expect(table.maskOf({ colour: ['blue'] })).toBe(blue);
    expect([...table.eligibleRows({ colour: ['blue'] }, Uint8Array.from([0, 1, 1, 1]))!]).toEqual([0, 0, 1, 0]);
    expect([...blue!]).toEqual([1, 0, 1, 0]);
    expect([...table.eligibleRows(undefined, Uint8Array.from([0, 1, 1, 0]))!]).toEqual([0, 1, 1, 0]);
    expect(table.eligibleRows({})).toBeUndefined();
  });

  it('finds rows by id, refusing unknown ids with ITEM_NOT_FOUND, and counts facets', () => {
    const table = new ItemTable(items, ['colour']);
    expect(table.rowOf('c')).toBe(2);
    expect(table.rowIfAny('z')).toBeUndefined();
    expect(() => table.rowOf('z')).toThrow(expect.objectContaining({ code: 'ITEM_NOT_FOUND' }));
    expect(table.facets()).toEqual({ colour: [{ value: 'Blue', count: 2 }, { value: 'Red', count: 2 }] });
    expect(table.list({ colour: ['red'] }, 0, 1)).toEqual({ total: 2, items: [items[1]] });
    expect(table.results([{ row: 3, score: 0.5 }])).toEqual([{ id: 'd', rank: 1, score: 0.5, metadata: { colour: 'Red' }, image: '/x/d.jpg' }]);
  });
});
