import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Lookalike } from '../../src/lookalike.js';
import { defaultSettings } from '../../src/model/registry.js';
import { openStore } from '../../src/store/open.js';
import { copyIndex } from '../../src/store/copy.js';
import { storeLocation } from '../../src/store/location.js';
import { PgStore, SCHEMA_VERSION } from '../../src/store/postgres.js';
import type { ImageSource, IndexManifest, ItemVectors, Store, StoredItem } from '../../src/store/types.js';
import { tempDir } from '../helpers/fixtures.js';
import { dropIndex, freshIndexName, PG_URL, sql, startPglite, type PgliteServer } from '../helpers/pg.js';
import { centredRandom } from '../helpers/random.js';

// One contract, three real backends: SQLite (a folder), Debian's PostgreSQL and PGlite
// (+ pgvector) over the wire. The same writes must give the same items, vectors, failures,
// files and top-10 neighbours on each.
const DIM = 32;
const N = 240;

const rng = centredRandom;

const r = rng(7);
const centres = Array.from({ length: 12 }, () => Float32Array.from({ length: DIM }, r));
const items: StoredItem[] = Array.from({ length: N }, (_, i) => ({ id: `p${i}`, image: `/nowhere/p${i}.jpg`, metadata: { group: String(i % 5), name: `Item "${i}", ünïcode` } }));
const vectors: ItemVectors[] = items.map((item, i) => {
  const max = Float32Array.from(centres[i % centres.length], (v) => v + 0.3 * r());
  // Image sources: a hash for all, a stamp for some (a URL whose server sent no ETag has none).
  const source = { hash: `h${i}`, ...(i % 3 ? { stamp: `file:${1000 + i}:${i}` } : {}) };
  return { id: item.id, max, avg: Float32Array.from(max, (v) => 0.5 * v + 0.1 * r()), colour: Float32Array.from({ length: 4 }, () => r() + 0.5), source };
});
const now = '2026-12-02T00:00:00.000Z';
const manifest: IndexManifest = {
  formatVersion: 1, settings: defaultSettings(), weightsId: 'synthetic', dimension: DIM, colourDimension: 4,
  catalog: { root: '/nowhere', kind: 'image-folder', columns: ['group', 'name'] }, createdAt: now, updatedAt: now,
};

/** The same sequence of writes on every backend: batches, a failure, a removal, a re-add, a file. */
async function fill(store: Store): Promise<void> {
  await store.setManifest(manifest);
  await store.upsertItems(items);
  for (let i = 0; i < N; i += 64) await store.putVectors(vectors.slice(i, i + 64).filter((v) => v.id !== 'p3'), i === 0 ? [{ id: 'p3', reason: 'unreadable' }] : []);
  await store.deleteItems(['p10', 'p11']);
  await store.upsertItems([items[10]]);
  await store.putVectors([vectors[10]]);
  await store.upsertItems([{ ...items[20], metadata: { ...items[20].metadata, group: 'changed' } }]);
  await store.putFile('note.bin', Buffer.from([0, 1, 2, 255]));
  await store.updateStamps([{ id: 'p5', stamp: 'file:1:2' }, { id: 'p6', stamp: 'etag:"x"' }]);
}

interface Backend { name: string; location: () => string; cleanup: () => Promise<void> }

let pglite: PgliteServer;
const pgName = freshIndexName('contract');
const pgliteName = freshIndexName('contract');
const dir = tempDir('lookalike-contract-');

const backends: Backend[] = [
  { name: 'SQLite', location: () => path.join(dir, 'idx'), cleanup: async () => rmSync(dir, { recursive: true, force: true }) },
  { name: 'PostgreSQL', location: () => storeLocation(PG_URL, pgName), cleanup: () => dropIndex(PG_URL, pgName) },
  { name: 'PGlite + pgvector', location: () => storeLocation(pglite.url, pgliteName), cleanup: async () => { await pglite.stop(); } },
];

interface Observed { sources: Array<[string, ImageSource]>; items: StoredItem[]; failures: unknown; counts: unknown; max: { ids: string[]; data: number[] }; colour: number[]; file?: number[]; top10: string[][]; generation: number }
const seen = new Map<string, Observed>();

beforeAll(async () => {
  pglite = await startPglite();
  for (const b of backends) {
    const store = await openStore(b.location(), { create: true });
    try {
      await fill(store);
    } finally {
      await store.close();
    }
    const reader = await openStore(b.location(), { readonly: true });
    await reader.preload?.(['max', 'colour']);
    const max = reader.loadMatrix('max');
    seen.set(b.name, {
      sources: [...(await reader.imageSources())].sort(([a], [b]) => a.localeCompare(b)),
      items: reader.listItems(), failures: reader.failures(), counts: reader.count(), generation: reader.generation(),
      max: { ids: max.ids, data: [...max.data] }, colour: [...reader.loadMatrix('colour').data], file: reader.getFile('note.bin') && [...reader.getFile('note.bin')!],
      top10: [],
    });
    await reader.close();
    const lookalike = await Lookalike.open(b.location());
    seen.get(b.name)!.top10 = await Promise.all(['p0', 'p10', 'p77', 'p201'].map(async (id) => (await lookalike.searchById(id, { k: 10 })).results.map((h) => h.id)));
    await lookalike.close();
  }
}, 120_000);

afterAll(async () => {
  for (const b of backends) await b.cleanup().catch(() => {});
});

describe('the store contract (SQLite, PostgreSQL, PGlite + pgvector)', () => {
  it('SQLite holds what was written: removed and re-added items last, the failure recorded, the file kept', () => {
    const s = seen.get('SQLite')!;
    expect(s.counts).toEqual({ items: N - 1, embedded: N - 2, failed: 1 });
    expect(s.failures).toEqual([{ id: 'p3', reason: 'unreadable' }]);
    expect(s.items.at(-1)!.id).toBe('p10'); // removed, then back: at the end
    expect(s.items.map((i) => i.id)).not.toContain('p11');
    expect(s.items.find((i) => i.id === 'p20')!.metadata.group).toBe('changed');
    expect(s.max.ids).not.toContain('p3');
    expect(s.file).toEqual([0, 1, 2, 255]);
    const sources = new Map(s.sources);
    expect(sources.size).toBe(N - 2);
    expect(sources.get('p4')).toEqual({ hash: 'h4', stamp: 'file:1004:4' });
    expect(sources.get('p5')).toEqual({ hash: 'h5', stamp: 'file:1:2' });
    expect(sources.get('p6')).toEqual({ hash: 'h6', stamp: 'etag:"x"' });
    expect(sources.get('p9')).toEqual({ hash: 'h9' });
    expect(s.top10.every((ids) => ids.length === 10)).toBe(true);
  });

  for (const name of ['PostgreSQL', 'PGlite + pgvector']) {
    it(`${name} gives the same items, metadata, failures, vectors, files and top-10 ids as SQLite`, () => {
      const a = seen.get('SQLite')!, b = seen.get(name)!;
      expect(b.items).toEqual(a.items);
      expect(b.sources).toEqual(a.sources);
      expect(b.failures).toEqual(a.failures);
      expect(b.counts).toEqual(a.counts);
      expect(b.max.ids).toEqual(a.max.ids);
      expect(b.max.data).toEqual(a.max.data); // bit for bit: float32 bytes in, the same bytes out
      expect(b.colour).toEqual(a.colour);
      expect(b.file).toEqual(a.file);
      expect(b.top10).toEqual(a.top10);
      expect(b.generation).toBeGreaterThan(0);
    });
  }
});

describe('the PostgreSQL store', () => {
  it('brings a second process up to date from what changed since its generation', async () => {
    const location = storeLocation(PG_URL, pgName);
    const writer = await PgStore.open(location);
    const reader = await PgStore.open(location, { readonly: true });
    await reader.preload(['max', 'colour']);
    const before = reader.generation();
    expect(await reader.refresh()).toBe(false);
    const extra = { id: 'new1', image: '/nowhere/new1.jpg', metadata: { group: '9', name: 'new' } };
    await writer.upsertItems([extra]);
    await writer.putVectors([{ ...vectors[0], id: 'new1' }]);
    await writer.deleteItems(['p0']);
    expect(await reader.refresh()).toBe(true);
    expect(reader.generation()).toBeGreaterThan(before);
    const m = reader.loadMatrix('max');
    expect(m.ids).not.toContain('p0');
    expect(m.ids.at(-1)).toBe('new1');
    expect([...m.data.subarray((m.ids.length - 1) * DIM)]).toEqual([...vectors[0].max]);
    expect(reader.getItem('new1')).toEqual(extra);
    // The reader's matrix equals a fresh load of the same generation.
    const fresh = await PgStore.open(location, { readonly: true });
    await fresh.preload(['max']);
    expect(fresh.loadMatrix('max').ids).toEqual(m.ids);
    expect([...fresh.loadMatrix('max').data]).toEqual([...m.data]);
    await Promise.all([writer.close(), reader.close(), fresh.close()]);
  });

  it('lookalike copy moves a folder index into PostgreSQL unchanged, and a rerun writes nothing', async () => {
    const name = freshIndexName('copy');
    const to = storeLocation(PG_URL, name);
    try {
      const first = await copyIndex(path.join(dir, 'idx'), to);
      expect(first).toMatchObject({ items: N - 1, copied: N - 2, removed: 0 });
      expect((await copyIndex(path.join(dir, 'idx'), to)).copied).toBe(0);
      const copied = await openStore(to, { readonly: true });
      await copied.preload?.(['max', 'colour']);
      const a = seen.get('SQLite')!;
      expect(copied.listItems()).toEqual(a.items);
      expect(copied.failures()).toEqual(a.failures);
      expect(copied.loadMatrix('max').ids).toEqual(a.max.ids);
      expect([...copied.loadMatrix('max').data]).toEqual(a.max.data);
      expect([...(await copied.imageSources())].sort(([x], [y]) => x.localeCompare(y))).toEqual(a.sources);
      expect(copied.getFile('note.bin')).toBeUndefined(); // only the index's own files travel (head, map)
      await copied.close();
    } finally {
      await dropIndex(PG_URL, name);
    }
  });

  it('creates its schema once when two first runs race, versioned', async () => {
    const name = freshIndexName('race');
    const location = storeLocation(PG_URL, name);
    try {
      const stores = await Promise.all([PgStore.open(location, { create: true }), PgStore.open(location, { create: true }), PgStore.open(location, { create: true })]);
      await Promise.all(stores.map((s) => s.close()));
      const v = await sql(PG_URL, `SELECT value FROM "${name}".meta WHERE key = 'schema_version'`);
      expect(Number(v.rows[0].value)).toBe(SCHEMA_VERSION);
    } finally {
      await dropIndex(PG_URL, name);
    }
  });

  it('upgrades an index of schema 1 (before image hashes) in place, its vectors kept', async () => {
    const name = freshIndexName('old');
    const location = storeLocation(PG_URL, name);
    try {
      const store = await PgStore.open(location, { create: true });
      await fill(store);
      await store.close();
      await sql(PG_URL, `ALTER TABLE "${name}".vectors DROP COLUMN image_hash, DROP COLUMN image_stamp; UPDATE "${name}".meta SET value = '1' WHERE key = 'schema_version'`);
      const upgraded = await PgStore.open(location);
      expect(upgraded.count()).toEqual(seen.get('SQLite')!.counts);
      expect((await upgraded.imageSources()).size).toBe(0);
      await upgraded.close();
      expect(Number((await sql(PG_URL, `SELECT value FROM "${name}".meta WHERE key = 'schema_version'`)).rows[0].value)).toBe(SCHEMA_VERSION);
    } finally {
      await dropIndex(PG_URL, name);
    }
  });

  it('refuses an index written by a newer Lookalike, and one that does not exist', async () => {
    const name = freshIndexName('newer');
    const location = storeLocation(PG_URL, name);
    try {
      await (await PgStore.open(location, { create: true })).close();
      await sql(PG_URL, `UPDATE "${name}".meta SET value = $1 WHERE key = 'schema_version'`, [String(SCHEMA_VERSION + 1)]);
      await expect(PgStore.open(location)).rejects.toMatchObject({ code: 'STORE_TOO_NEW' });
      await expect(PgStore.open(location, { create: true })).rejects.toMatchObject({ code: 'STORE_TOO_NEW' });
      await expect(PgStore.open(storeLocation(PG_URL, freshIndexName('absent')))).rejects.toMatchObject({ code: 'INDEX_NOT_FOUND' });
    } finally {
      await dropIndex(PG_URL, name);
    }
  });
});

describe('--search db (PGlite + pgvector, HNSW)', () => {
  it('answers top-k, filters and thresholds in SQL with the ids exact search finds', async () => {
    const lookalike = await Lookalike.open(storeLocation(pglite.url, pgliteName));
    try {
      expect(lookalike.databaseSearch).toBe(true);
      let found = 0, total = 0;
      for (const id of ['p1', 'p42', 'p99', 'p150', 'p230']) {
        const exact = (await lookalike.searchById(id, { k: 10, search: 'exact' })).results;
        const db = (await lookalike.searchById(id, { k: 10, search: 'db' })).results;
        expect(db.map((h) => h.id)).not.toContain(id);
        const truth = new Set(exact.map((h) => h.id));
        found += db.filter((h) => truth.has(h.id)).length;
        total += exact.length;
        // Scores are cosines of the half-precision copies: within 1e-3 of the exact ones.
        for (const h of db) {
          const e = exact.find((x) => x.id === h.id);
          if (e) expect(Math.abs(e.score - h.score)).toBeLessThan(1e-3);
        }
        const filtered = (await lookalike.searchById(id, { k: 10, search: 'db', filters: { group: ['2', '3'] } })).results;
        expect(filtered.length).toBe(10);
        expect(filtered.every((h) => ['2', '3'].includes(h.metadata.group))).toBe(true);
        const above = (await lookalike.searchById(id, { k: 50, search: 'db', threshold: exact[4].score })).results;
        expect(above.every((h) => h.score >= exact[4].score)).toBe(true);
        expect(above.length).toBeGreaterThanOrEqual(4);
      }
      expect(found / total).toBeGreaterThanOrEqual(0.95);
    } finally {
      await lookalike.close();
    }
  });

  it('is refused, with what to do, where the database has no pgvector (Debian) or the store is a folder', async () => {
    for (const location of [storeLocation(PG_URL, pgName), path.join(dir, 'idx')]) {
      const lookalike = await Lookalike.open(location);
      try {
        await expect(lookalike.searchById('p1', { search: 'db' })).rejects.toMatchObject({ code: 'BAD_OPTION' });
      } finally {
        await lookalike.close();
      }
    }
  });
});
