/**
 * The approximate nearest-neighbour index (HNSW, usearch) over one embedding space.
 *
 * It takes matrices and ids, never a store: SQLite keeps it as files beside index.sqlite,
 * another backend can keep the same files anywhere (or build one per replica).
 *
 * Vectors inside are float16 (2 bytes per dimension): half the float32 rows, and precise
 * enough for the graph's order (int8 was measured and is not: DEFAULT_ANN_SETTINGS). The candidates it returns are re-ranked exactly by
 * the caller against full-precision rows, so the scores users see are true cosines; the
 * quantisation only decides which rows get re-ranked.
 *
 * Keys are stable numbers handed out as items arrive; `ids[key]` names the item (null once
 * removed). `sync` brings the index in line with the catalog's rows: new ids are added,
 * ids gone are removed, ids whose vector changed (re-embedded photo) are replaced. A row's
 * vector is recognised by a cheap checksum, so an unchanged catalog costs one pass.
 *
 * Beside the graph, `save` writes the full-precision rows of the space by key
 * (`<base>.f32`). A loaded index re-ranks from there with a positioned read per candidate
 * (the OS page cache keeps the hot rows), so a server whose files are current holds only
 * the float16 graph in memory, never the float32 matrix of the space nor the raw backbone
 * vectors it is computed from.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Index, MetricKind, ScalarKind } from 'usearch';

export interface AnnSettings {
  quantization: 'i8' | 'f16' | 'f32';
  /** Graph degree (M): more links, better recall, more memory. */
  connectivity: number;
  /** Beam width while inserting: higher builds slower and a better graph. */
  expansionAdd: number;
  /** Beam width while searching (at least the number of candidates asked for). */
  expansionSearch: number;
}

/**
 * Chosen on the dev catalog's 31,220 backbone vectors (2,048-d, 300 queries, re-ranked).
 * float16, not int8: usearch's int8 cosine was off by 0.02-0.03 on neighbours (our own int8
 * rounding of the same vectors: 0.0003), which scrambles the graph's order: recall@10 of
 * the graph alone 0.934 in int8 (M 16 or 32, expansion 64-200 alike) against 0.992 in
 * float16 at half the beam. M 24 with a wider insertion beam (128) over M 16/64: recall@10
 * 0.999 against 0.995, and under gender=Women 99.7% of answers identical to exact search
 * against 98.3%, for 0.1 ms more per query; M 32 was no better.
 */
export const DEFAULT_ANN_SETTINGS: AnnSettings = { quantization: 'f16', connectivity: 24, expansionAdd: 128, expansionSearch: 64 };

/**
 * A sync adding fewer rows than this inserts them on one thread. usearch's parallel
 * insertion is not deterministic (two builds of one catalog answer some queries
 * differently, and now and then miss an item's own vector); on one thread the same rows
 * added to the same graph always give the same graph. Larger syncs, a big catalog's first
 * build, use every core: about 1 ms per 2,048-d row on one thread, half that on two.
 */
export const SERIAL_ADD_BELOW = 10_000;

/** Bumped when the files' layout or meaning changes; older files are rebuilt. */
const FORMAT = 2;

export interface AnnMeta {
  format: number;
  spaceId: string;
  dim: number;
  settings: AnnSettings;
  /** The store generation the index reflects. */
  generation: number;
  /** Recall@10 of the re-ranked ANN search against exact search, measured at the last sync. */
  recallAt10?: number;
  recallQueries?: number;
}

export interface SyncReport { added: number; removed: number; replaced: number; seconds: number }

export class AnnIndex {
  private index: Index;
  /** Item id of each key; null for removed keys. */
  private ids: Array<string | null> = [];
  private checks: number[] = [];
  private readonly keyById = new Map<string, number>();
  /** Row in the caller's current matrix of each key (-1: none), and the key of each row. */
  private keyToRow = new Int32Array(0);
  private rowToKey = new Int32Array(0);
  /** The saved full-precision rows by key (`<base>.f32`), open for reading once loaded. */
  private rowsFd?: number;
  meta: AnnMeta;

  private constructor(meta: AnnMeta) {
    this.meta = meta;
    this.index = AnnIndex.newIndex(meta.dim, meta.settings);
  }

  static create(spaceId: string, dim: number, settings: AnnSettings = DEFAULT_ANN_SETTINGS): AnnIndex {
    return new AnnIndex({ format: FORMAT, spaceId, dim, settings, generation: -1 });
  }

  private static newIndex(dim: number, s: AnnSettings): Index {
    return new Index({
      dimensions: dim,
      metric: MetricKind.Cos,
      quantization: s.quantization as ScalarKind,
      connectivity: s.connectivity,
      expansion_add: s.expansionAdd,
      expansion_search: s.expansionSearch,
      multi: false,
    });
  }

  /** Items in the index. */
  get size(): number {
    return this.keyById.size;
  }

  /**
   * Brings the index in line with `ids` (row order of `matrix`, n x dim, normalised).
   * `generation` is recorded as the state reached.
   */
  sync(ids: string[], matrix: Float32Array, generation: number, onProgress?: (done: number, total: number) => void): SyncReport {
    const started = performance.now();
    const dim = this.meta.dim;
    const wanted = new Map<string, number>();
    ids.forEach((id, row) => wanted.set(id, row));
    const drop: number[] = [];
    let replaced = 0;
    for (const [id, key] of this.keyById) {
      const row = wanted.get(id);
      if (row === undefined) drop.push(key);
      else if (checksum(matrix, row, dim) !== this.checks[key]) { drop.push(key); replaced++; }
    }
    for (const key of drop) {
      this.index.remove(BigInt(key));
      this.keyById.delete(this.ids[key] as string);
      this.ids[key] = null;
    }
    const addRows: number[] = [];
    for (let row = 0; row < ids.length; row++) if (!this.keyById.has(ids[row])) addRows.push(row);
    const batch = 4096;
    const threads = addRows.length < SERIAL_ADD_BELOW ? 1 : 0;
    for (let start = 0; start < addRows.length; start += batch) {
      const rows = addRows.slice(start, start + batch);
      const keys = new BigUint64Array(rows.length);
      const vectors = new Float32Array(rows.length * dim);
      rows.forEach((row, i) => {
        const key = this.ids.length;
        this.ids.push(ids[row]);
        this.checks.push(checksum(matrix, row, dim));
        this.keyById.set(ids[row], key);
        keys[i] = BigInt(key);
        vectors.set(matrix.subarray(row * dim, (row + 1) * dim), i * dim);
      });
      this.index.add(keys, vectors, threads);
      onProgress?.(Math.min(start + batch, addRows.length), addRows.length);
    }
    this.bindRows(ids);
    this.meta.generation = generation;
    return { added: addRows.length, removed: drop.length - replaced, replaced, seconds: (performance.now() - started) / 1000 };
  }

  /** Maps keys to the rows of the caller's matrix (after loading an index in sync). */
  bindRows(ids: string[]): void {
    this.keyToRow = new Int32Array(this.ids.length).fill(-1);
    this.rowToKey = new Int32Array(ids.length).fill(-1);
    ids.forEach((id, row) => {
      const key = this.keyById.get(id);
      if (key !== undefined) { this.keyToRow[key] = row; this.rowToKey[row] = key; }
    });
  }

  /** Whether full-precision rows can be read from the saved rows file (`readRow`). */
  get hasRowsFile(): boolean {
    return this.rowsFd !== undefined;
  }

  /** Reads a row's full-precision vector from the rows file into `out` (dim floats). */
  readRow(row: number, out: Float32Array): Float32Array {
    const key = this.rowToKey[row];
    if (this.rowsFd === undefined || key === undefined || key < 0) throw new Error(`row ${row} has no saved vector`);
    const bytes = this.meta.dim * 4;
    readSync(this.rowsFd, new Uint8Array(out.buffer, out.byteOffset, bytes), 0, bytes, key * bytes);
    return out;
  }

  /** Closes the rows file. */
  close(): void {
    if (this.rowsFd !== undefined) closeSync(this.rowsFd);
    this.rowsFd = undefined;
  }

  /** The `count` nearest rows found by the graph, best first (approximate order). */
  searchRows(query: Float32Array, count: number): Int32Array {
    const found = this.index.search(query, Math.min(count, this.size), 1);
    const rows = new Int32Array(found.keys.length);
    let w = 0;
    for (let i = 0; i < found.keys.length; i++) {
      const row = this.keyToRow[Number(found.keys[i])];
      if (row >= 0) rows[w++] = row;
    }
    return rows.subarray(0, w);
  }

  /**
   * Writes `<base>.usearch`, the rows of `matrix` (the caller's current rows, as bound) by
   * key into `<base>.f32` (zeros for removed keys), and `<base>.json` last: a reader finds
   * either the old JSON, which no longer matches the graph's size and is rebuilt, or the new.
   * The rows file is then the one re-ranking reads from.
   */
  save(base: string, matrix: Float32Array): void {
    mkdirSync(path.dirname(base), { recursive: true });
    const tmp = `${base}.${process.pid}.tmp`;
    this.index.save(`${tmp}.usearch`);
    const dim = this.meta.dim;
    const fd = openSync(`${tmp}.f32`, 'w');
    try {
      const block = 4096;
      const buf = new Float32Array(block * dim);
      for (let start = 0; start < this.ids.length; start += block) {
        const count = Math.min(block, this.ids.length - start);
        buf.fill(0);
        for (let i = 0; i < count; i++) {
          const row = this.keyToRow[start + i];
          if (row >= 0) buf.set(matrix.subarray(row * dim, (row + 1) * dim), i * dim);
        }
        writeSync(fd, new Uint8Array(buf.buffer, 0, count * dim * 4));
      }
    } finally {
      closeSync(fd);
    }
    renameSync(`${tmp}.usearch`, `${base}.usearch`);
    this.close();
    renameSync(`${tmp}.f32`, `${base}.f32`);
    this.rowsFd = openSync(`${base}.f32`, 'r');
    writeFileSync(`${tmp}.json`, JSON.stringify({ ...this.meta, ids: this.ids, checks: this.checks }));
    renameSync(`${tmp}.json`, `${base}.json`);
  }

  /** Reads an index saved by `save`; undefined when missing, stale in format or settings, or unreadable. */
  static load(base: string, spaceId: string, dim: number, settings: AnnSettings = DEFAULT_ANN_SETTINGS): AnnIndex | undefined {
    if (!existsSync(`${base}.json`) || !existsSync(`${base}.usearch`) || !existsSync(`${base}.f32`)) return undefined;
    try {
      const saved = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as AnnMeta & { ids: Array<string | null>; checks: number[] };
      if (saved.format !== FORMAT || saved.spaceId !== spaceId || saved.dim !== dim || JSON.stringify(saved.settings) !== JSON.stringify(settings)) return undefined;
      const { ids, checks, ...meta } = saved;
      const ann = new AnnIndex(meta);
      ann.index.load(`${base}.usearch`);
      ann.ids = ids;
      ann.checks = checks;
      ids.forEach((id, key) => { if (id !== null) ann.keyById.set(id, key); });
      if (ann.index.size() !== ann.keyById.size || statSync(`${base}.f32`).size !== ids.length * dim * 4) return undefined;
      ann.rowsFd = openSync(`${base}.f32`, 'r');
      return ann;
    } catch {
      return undefined;
    }
  }

  /** The saved index's description only (no ids, no graph). */
  static readMeta(base: string): AnnMeta | undefined {
    try {
      const saved = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as AnnMeta & { ids?: unknown; checks?: unknown };
      delete saved.ids;
      delete saved.checks;
      return saved;
    } catch {
      return undefined;
    }
  }

  /**
   * Bytes of the saved index files: `index` the graph with its float16 vectors and the key list
   * (what a server holds in memory), `rows` the full-precision rows re-ranking reads from disk.
   */
  static fileBytes(base: string): { index: number; rows: number } {
    const size = (ext: string) => (existsSync(`${base}.${ext}`) ? statSync(`${base}.${ext}`).size : 0);
    return { index: size('usearch') + size('json'), rows: size('f32') };
  }

  static remove(base: string): void {
    for (const ext of ['usearch', 'json', 'f32']) rmSync(`${base}.${ext}`, { force: true });
  }
}

/** A weighted sum of a row: changes when the vector does, cheap, stable in JSON. */
function checksum(matrix: Float32Array, row: number, dim: number): number {
  let s = 0;
  const off = row * dim;
  for (let j = 0; j < dim; j++) s += matrix[off + j] * ((j % 7) + 1);
  return Math.fround(s);
}
