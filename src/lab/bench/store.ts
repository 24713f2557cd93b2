/**
 * The store benchmark: what a replica pays to get an index's vectors into memory, from a
 * folder (SQLite) or from PostgreSQL, measured in this process from a cold open. For
 * PostgreSQL it also times the alternative to COPY BINARY, a plain SELECT of the bytea
 * columns (hex text on the wire, decoded by the client), so the choice stays measured.
 * The serving side (cold start to ready, memory, photo search p50/p99) is `bench-api`.
 */
import pg from 'pg';
import { openStore } from '../../store/open.js';
import { describeLocation, isStoreUrl, parseLocation } from '../../store/location.js';
import { Lookalike } from '../../lookalike.js';
import { backboneSpace } from '../../search/space.js';
import { percentile } from '../../math/stats.js';
import type { VectorKind } from '../../store/types.js';

export interface StoreBenchReport {
  location: string;
  kind: 'sqlite' | 'postgres';
  items: number;
  kinds: VectorKind[];
  /** Open (connect, schema check, items and manifest) to vectors in memory, seconds. */
  openSeconds: number;
  loadSeconds: number;
  totalSeconds: number;
  bytes: number;
  /** The same vectors through a plain SELECT (hex bytea), seconds; PostgreSQL only. */
  selectSeconds?: number;
  rssMiB: number;
}

export async function runStoreBench(location: string, options: { select?: boolean } = {}): Promise<StoreBenchReport> {
  const t0 = performance.now();
  const store = await openStore(location, { readonly: true });
  try {
    const t1 = performance.now();
    const manifest = store.getManifest();
    const kinds: VectorKind[] = manifest?.extensions?.head ? ['max', 'avg', 'colour'] : [manifest?.settings.pooling ?? 'max', 'colour'];
    await store.preload?.(kinds);
    const matrices = kinds.map((k) => store.loadMatrix(k));
    const t2 = performance.now();
    const report: StoreBenchReport = {
      location, kind: isStoreUrl(location) ? 'postgres' : 'sqlite', items: matrices[0].ids.length, kinds,
      openSeconds: (t1 - t0) / 1000, loadSeconds: (t2 - t1) / 1000, totalSeconds: (t2 - t0) / 1000,
      bytes: matrices.reduce((s, m) => s + m.data.byteLength, 0), rssMiB: process.memoryUsage().rss / 2 ** 20,
    };
    if (options.select !== false && isStoreUrl(location)) report.selectSeconds = await timeSelect(location, kinds);
    return report;
  } finally {
    await store.close();
  }
}

/** All rows of the kinds' bytea columns by SELECT, decoded into Buffers by the client. */
async function timeSelect(location: string, kinds: VectorKind[]): Promise<number> {
  const where = parseLocation(location);
  const client = new pg.Client({ connectionString: where.url });
  await client.connect();
  try {
    const cols = kinds.map((k) => `v.${k === 'max' ? 'vmax' : k === 'avg' ? 'vavg' : 'colour'}`).join(', ');
    const t0 = performance.now();
    const r = await client.query({ text: `SELECT v.id, ${cols} FROM "${where.index}".vectors v JOIN "${where.index}".items i ON i.id = v.id ORDER BY i.seq`, rowMode: 'array' });
    // Into one matrix per kind, as COPY does, so both end in the same place.
    kinds.forEach((_, k) => {
      const first = r.rows[0]?.[k + 1] as Buffer | undefined;
      const out = new Uint8Array(r.rows.length * (first?.byteLength ?? 0));
      r.rows.forEach((row, i) => out.set(row[k + 1] as Buffer, i * (first?.byteLength ?? 0)));
    });
    return (performance.now() - t0) / 1000;
  } finally {
    await client.end();
  }
}

export interface DbSearchBenchReport {
  location: string;
  items: number;
  queries: number;
  k: number;
  recallAtK: number;
  db: { p50ms: number; p99ms: number };
  exact: { p50ms: number; p99ms: number };
  filtered: { filter: string; recallAtK: number; p50ms: number };
}

/**
 * `--search db` against exact search on the same replica: catalog items as queries (each
 * excluded from its own results), recall@k of the database's HNSW answers, and latency of
 * both, one query at a time.
 */
export async function runDbSearchBench(location: string, options: { queries?: number; k?: number } = {}): Promise<DbSearchBenchReport> {
  const lookalike = await Lookalike.open(location, { readonly: true });
  try {
    const k = options.k ?? 10;
    const index = lookalike.indexView();
    const space = backboneSpace('max', lookalike.manifest.dimension);
    const n = index.size;
    const nq = Math.min(options.queries ?? 200, n);
    const ids = Array.from({ length: nq }, (_, i) => index.items[Math.floor((i * n) / nq)].id);
    const field = lookalike.manifest.catalog.columns.includes('gender') ? 'gender' : lookalike.manifest.catalog.columns[0];
    const value = index.items[0].metadata[field];
    const run = async (filters?: Record<string, string[]>) => {
      const dbMs: number[] = [], exactMs: number[] = [];
      let found = 0, total = 0;
      for (const id of ids) {
        const q = index.vectorOf(space, id);
        let t = performance.now();
        const exact = index.search(space, q, { k, excludeId: id, filters });
        exactMs.push(performance.now() - t);
        t = performance.now();
        const db = await index.searchDb(space, q, { k, excludeId: id, filters });
        dbMs.push(performance.now() - t);
        const truth = new Set(exact.map((h) => h.id));
        found += db.filter((h) => truth.has(h.id)).length;
        total += exact.length;
      }
      return { recall: total ? found / total : 1, dbMs, exactMs };
    };
    const plain = await run();
    const filtered = await run({ [field]: [value] });
    return {
      location: describeLocation(location), items: n, queries: nq, k, recallAtK: plain.recall,
      db: { p50ms: pct(plain.dbMs, 50), p99ms: pct(plain.dbMs, 99) },
      exact: { p50ms: pct(plain.exactMs, 50), p99ms: pct(plain.exactMs, 99) },
      filtered: { filter: `${field}=${value}`, recallAtK: filtered.recall, p50ms: pct(filtered.dbMs, 50) },
    };
  } finally {
    await lookalike.close();
  }
}

const pct = (xs: number[], p: number) => percentile([...xs].sort((a, b) => a - b), p);
