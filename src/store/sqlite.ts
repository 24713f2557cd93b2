/**
 * SQLite store (better-sqlite3): one file, `index.sqlite`, in the index folder.
 * Vectors are float32 blobs. Every batch of vectors is one transaction, which is what
 * makes indexing resumable: an interrupted run loses at most the batch in flight.
 *
 * Loading 31k x 2048 blobs row by row costs about a second, so the contiguous matrix is
 * also cached as a flat file keyed by the store's generation; serve starts from it.
 */
import { indexArgs } from './location.js';
import Database from 'better-sqlite3';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { INDEX_FILES } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import type { ImageSource, IndexManifest, ItemFailure, ItemVectors, Store, StoredItem, TextMatch, VectorKind, VectorMatrix } from './types.js';

const DB_FILE = INDEX_FILES.database;

export function indexExists(dir: string): boolean {
  return existsSync(path.join(dir, DB_FILE));
}

export class SqliteStore implements Store {
  readonly location: string;
  readonly folder: string;
  private readonly db: Database.Database;
  private readonly readonly: boolean;

  private constructor(dir: string, db: Database.Database, readonly: boolean) {
    this.location = dir;
    this.folder = dir;
    this.db = db;
    this.readonly = readonly;
  }

  /**
   * Opens an existing index; with `create`, makes the folder and schema when missing.
   * An index that cannot be written (read-only media, another user's folder) is opened
   * read-only, so it can still be queried; `create` refuses it with INDEX_NOT_WRITABLE.
   */
  static open(dir: string, options: { create?: boolean; readonly?: boolean } = {}): SqliteStore {
    const file = path.join(dir, DB_FILE);
    if (isFile(dir)) throw new LookalikeError('INDEX_NOT_A_FOLDER', { path: dir });
    if (!existsSync(file)) {
      if (!options.create) throw new LookalikeError('INDEX_NOT_FOUND', { path: dir, args: indexArgs(dir) });
      try {
        mkdirSync(dir, { recursive: true });
      } catch (err) {
        throw storeError(err, dir);
      }
    }
    const writable = canWrite(dir) && (!existsSync(file) || canWrite(file));
    if (options.create && !writable) throw new LookalikeError('INDEX_NOT_WRITABLE', { path: dir, reason: 'permission denied' });
    const readonly = options.readonly === true || !writable;
    let db: Database.Database | undefined;
    try {
      if (existsSync(file)) checkNotTruncated(file);
      db = readonly ? openReadonly(file) : new Database(file);
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.exec(`
          CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
          CREATE TABLE IF NOT EXISTS items (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            image TEXT NOT NULL,
            metadata TEXT NOT NULL
          );
          CREATE TABLE IF NOT EXISTS vectors (
            id TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
            vmax BLOB NOT NULL, vavg BLOB NOT NULL, colour BLOB NOT NULL,
            image_hash TEXT, image_stamp TEXT
          );
          CREATE TABLE IF NOT EXISTS failures (
            id TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
            reason TEXT NOT NULL
          );
          INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
        `);
        db.pragma('foreign_keys = ON');
        // Indexes written before image sources were kept gain the columns (left empty).
        const columns = new Set((db.prepare(`PRAGMA table_info(vectors)`).all() as Array<{ name: string }>).map((c) => c.name));
        if (!columns.has('image_hash')) db.exec(`ALTER TABLE vectors ADD COLUMN image_hash TEXT; ALTER TABLE vectors ADD COLUMN image_stamp TEXT;`);
        addTextIndex(db, 'main');
      }
      // Every table is read once, so a damaged file is refused here, in one clear line.
      for (const table of ['meta', 'items', 'vectors', 'failures']) db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get();
    } catch (err) {
      db?.close();
      throw storeError(err, dir);
    }
    return new SqliteStore(dir, db, readonly);
  }

  getManifest(): IndexManifest | undefined {
    const row = this.db.prepare(`SELECT value FROM meta WHERE key = 'manifest'`).get() as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as IndexManifest) : undefined;
  }

  setManifest(manifest: IndexManifest): void {
    this.db.prepare(`INSERT INTO meta (key, value) VALUES ('manifest', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`)
      .run(JSON.stringify(manifest));
  }

  upsertItems(items: StoredItem[]): void {
    const stmt = this.db.prepare(`INSERT INTO items (id, image, metadata) VALUES (?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET image = excluded.image, metadata = excluded.metadata
      WHERE items.image != excluded.image OR items.metadata != excluded.metadata`);
    this.db.transaction(() => {
      let changed = 0;
      for (const item of items) changed += stmt.run(item.id, item.image, JSON.stringify(item.metadata)).changes;
      if (changed) this.bump();
    })();
  }

  deleteItems(ids: string[]): void {
    if (!ids.length) return;
    const stmt = this.db.prepare(`DELETE FROM items WHERE id = ?`);
    this.db.transaction(() => {
      for (const id of ids) stmt.run(id);
      this.bump();
    })();
  }

  putVectors(batch: ItemVectors[], failures: ItemFailure[] = []): void {
    const put = this.db.prepare(`INSERT OR REPLACE INTO vectors (id, vmax, vavg, colour, image_hash, image_stamp) VALUES (?, ?, ?, ?, ?, ?)`);
    const clear = this.db.prepare(`DELETE FROM failures WHERE id = ?`);
    const fail = this.db.prepare(`INSERT OR REPLACE INTO failures (id, reason) VALUES (?, ?)`);
    this.db.transaction(() => {
      for (const v of batch) {
        put.run(v.id, blob(v.max), blob(v.avg), blob(v.colour), v.source?.hash ?? null, v.source?.stamp ?? null);
        clear.run(v.id);
      }
      for (const f of failures) fail.run(f.id, f.reason);
      this.bump();
    })();
  }

  imageSources(): Map<string, ImageSource> {
    // An older index opened read-only has no such columns (nothing to compare with).
    const columns = (this.db.prepare(`PRAGMA table_info(vectors)`).all() as Array<{ name: string }>).map((c) => c.name);
    if (!columns.includes('image_hash')) return new Map();
    const rows = this.db.prepare(`SELECT id, image_hash, image_stamp FROM vectors WHERE image_hash IS NOT NULL`).raw().all() as Array<[string, string, string | null]>;
    return new Map(rows.map(([id, hash, stamp]) => [id, stamp ? { hash, stamp } : { hash }]));
  }

  updateStamps(stamps: Array<{ id: string; stamp: string }>): void {
    if (!stamps.length) return;
    const stmt = this.db.prepare(`UPDATE vectors SET image_stamp = ? WHERE id = ?`);
    // Not a data change (same bytes, same vectors): the generation stays.
    this.db.transaction(() => { for (const s of stamps) stmt.run(s.stamp, s.id); })();
  }

  /** Files live beside index.sqlite (head.lkhead, map.json), written atomically. */
  getFile(name: string): Buffer | undefined {
    try {
      return readFileSync(path.join(this.location, path.basename(name)));
    } catch {
      return undefined;
    }
  }

  putFile(name: string, bytes: Buffer): void {
    const file = path.join(this.location, path.basename(name));
    try {
      writeFileSync(`${file}.${process.pid}.tmp`, bytes);
      renameSync(`${file}.${process.pid}.tmp`, file);
    } catch (err) {
      throw storeError(err, this.location);
    }
  }

  deleteFile(name: string): void {
    rmSync(path.join(this.location, path.basename(name)), { force: true });
  }

  listItems(): StoredItem[] {
    return (this.db.prepare(`SELECT id, image, metadata FROM items ORDER BY seq`).all() as Array<{ id: string; image: string; metadata: string }>)
      .map((r) => ({ id: r.id, image: r.image, metadata: JSON.parse(r.metadata) }));
  }

  getItem(id: string): StoredItem | undefined {
    const r = this.db.prepare(`SELECT id, image, metadata FROM items WHERE id = ?`).get(id) as { id: string; image: string; metadata: string } | undefined;
    return r && { id: r.id, image: r.image, metadata: JSON.parse(r.metadata) };
  }

  embeddedIds(): Set<string> {
    return new Set((this.db.prepare(`SELECT id FROM vectors`).pluck().all() as string[]));
  }

  failures(): ItemFailure[] {
    return this.db.prepare(`SELECT f.id, f.reason FROM failures f JOIN items i ON i.id = f.id ORDER BY i.seq`).all() as ItemFailure[];
  }

  count(): { items: number; embedded: number; failed: number } {
    const one = (sql: string) => this.db.prepare(sql).pluck().get() as number;
    return {
      items: one(`SELECT COUNT(*) FROM items`),
      embedded: one(`SELECT COUNT(*) FROM vectors`),
      failed: one(`SELECT COUNT(*) FROM failures`),
    };
  }

  generation(): number {
    return Number(this.db.prepare(`SELECT value FROM meta WHERE key = 'generation'`).pluck().get() ?? 0);
  }

  loadMatrix(kind: VectorKind): VectorMatrix {
    const gen = this.generation();
    const cacheDir = path.join(this.location, INDEX_FILES.cache);
    const base = path.join(cacheDir, `${kind}-g${gen}`);
    if (existsSync(`${base}.f32`) && existsSync(`${base}.ids.json`)) {
      const ids = JSON.parse(readFileSync(`${base}.ids.json`, 'utf8')) as string[];
      const bytes = readFileSync(`${base}.f32`);
      const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      return { ids, data: data.byteOffset % 4 === 0 ? data : new Float32Array(data), dim: ids.length ? data.length / ids.length : 0 };
    }
    const column = kind === 'max' ? 'vmax' : kind === 'avg' ? 'vavg' : 'colour';
    const rows = this.db.prepare(`SELECT v.id, v.${column} AS vec FROM vectors v JOIN items i ON i.id = v.id ORDER BY i.seq`).raw().iterate() as IterableIterator<[string, Buffer]>;
    const ids: string[] = [];
    let data = new Float32Array(0);
    let dim = 0;
    let n = 0;
    for (const [id, vec] of rows) {
      if (!dim) {
        dim = vec.byteLength / 4;
        data = new Float32Array(dim * Math.max(1, this.count().embedded));
      }
      if (n * dim >= data.length) {
        const grown = new Float32Array(data.length * 2);
        grown.set(data);
        data = grown;
      }
      data.set(new Float32Array(vec.buffer, vec.byteOffset, dim), n * dim);
      ids.push(id);
      n++;
    }
    data = data.subarray(0, n * dim);
    if (!this.readonly) {
      // Best effort: a read-only index folder simply goes without the cache.
      try {
        mkdirSync(cacheDir, { recursive: true });
        for (const f of readdirSync(cacheDir)) if (f.startsWith(`${kind}-g`)) rmSync(path.join(cacheDir, f), { force: true });
        writeFileSync(`${base}.f32.tmp`, data);
        writeFileSync(`${base}.ids.json`, JSON.stringify(ids));
        renameSync(`${base}.f32.tmp`, `${base}.f32`);
      } catch { /* no cache */ }
    }
    return { ids, data, dim };
  }

  /**
   * Items whose name or attributes hold every term (each stemmed by FTS5's porter
   * tokenizer), best first by BM25 with the product name weighing three times the
   * attributes. An index opened read-only that predates the text index gets one in memory.
   */
  searchText(terms: string[]): TextMatch[] {
    if (!terms.length) return [];
    this.ensureTextIndex();
    // Terms are letters and digits only (search/text.ts textTerms); quoted, FTS5 reads none as syntax.
    const match = terms.map((t) => `"${t.replace(/"/g, '""')}"`).join(' AND ');
    // Unqualified: the table is in main, or in temp for an older index opened read-only.
    const rows = this.db.prepare(`SELECT i.id AS id, bm25(items_text, ${NAME_WEIGHT}, 1.0) AS rank
      FROM items_text JOIN items i ON i.seq = items_text.rowid
      WHERE items_text MATCH ? ORDER BY rank, i.seq`).all(match) as Array<{ id: string; rank: number }>;
    return rows.map((r) => ({ id: r.id, score: -r.rank }));
  }

  private hasTextIndex = false;

  private ensureTextIndex(): void {
    if (this.hasTextIndex) return;
    if (!this.db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'items_text'`).pluck().get()) addTextIndex(this.db, 'temp');
    this.hasTextIndex = true;
  }

  /**
   * After a writer's run: back to a rollback journal when no one else has the file open,
   * so the finished index is one self-contained file that read-only media can serve (WAL
   * needs a writable -shm next to it). Refused, harmlessly, while another process reads.
   */
  settle(): void {
    if (this.readonly) return;
    try { this.db.pragma('journal_mode = DELETE'); } catch { /* still in use */ }
  }

  close(): void {
    this.db.close();
  }

  private bump(): void {
    this.db.prepare(`UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'`).run();
  }
}

/** BM25 weight of the product name against the attribute columns in text searches. */
const NAME_WEIGHT = 3.0;

/** The column holding a product's name (styles.csv); every other metadata value is an attribute. */
const NAME_COLUMN = 'productDisplayName';

/**
 * The full-text index of items' text (FTS5, porter stemming, accents folded), row for row
 * with `items` by seq. In `main`, triggers keep it in step with every write of items; an
 * index written before it existed is filled once here. In `temp` (a read-only open of
 * such an index) it is a copy built for this connection.
 */
function addTextIndex(db: Database.Database, schema: 'main' | 'temp'): void {
  const exists = db.prepare(`SELECT 1 FROM ${schema}.sqlite_master WHERE name = 'items_text'`).pluck().get();
  if (exists) return;
  // "T-shirt" is one word, as search/text.ts textTerms reads queries: "shirt" is not a T-shirt.
  const name = (row: string) => `replace(lower(coalesce(json_extract(${row}.metadata, '$.${NAME_COLUMN}'), '')), 't-shirt', 'tshirt')`;
  const attrs = (row: string) => `coalesce((SELECT group_concat(value, ' ') FROM json_each(${row}.metadata) WHERE key <> '${NAME_COLUMN}'), '')`;
  db.transaction(() => {
    db.exec(`CREATE VIRTUAL TABLE ${schema}.items_text USING fts5(name, attrs, tokenize = 'porter unicode61 remove_diacritics 2')`);
    if (schema === 'main') {
      db.exec(`
        CREATE TRIGGER items_text_insert AFTER INSERT ON items BEGIN
          INSERT INTO items_text (rowid, name, attrs) VALUES (new.seq, ${name('new')}, ${attrs('new')});
        END;
        CREATE TRIGGER items_text_update AFTER UPDATE OF metadata ON items BEGIN
          DELETE FROM items_text WHERE rowid = old.seq;
          INSERT INTO items_text (rowid, name, attrs) VALUES (new.seq, ${name('new')}, ${attrs('new')});
        END;
        CREATE TRIGGER items_text_delete AFTER DELETE ON items BEGIN
          DELETE FROM items_text WHERE rowid = old.seq;
        END;`);
    }
    db.exec(`INSERT INTO ${schema}.items_text (rowid, name, attrs) SELECT seq, ${name('items')}, ${attrs('items')} FROM items`);
  })();
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function canWrite(p: string): boolean {
  try {
    accessSync(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Read-only: straight from the file when SQLite can, else (a WAL-mode file on read-only
 * media, where SQLite cannot make its -shm) from a copy in memory.
 */
function openReadonly(file: string): Database.Database {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('schema_version');
    return db;
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code ?? '';
    if (!/^SQLITE_(READONLY|CANTOPEN)/.test(code)) throw err;
  }
  const bytes = readFileSync(file);
  // Header bytes 18-19 say "WAL" (2); an in-memory copy has no WAL, so mark it rollback (1).
  if (bytes[18] === 2) bytes[18] = bytes[19] = 1;
  return new Database(bytes, { readonly: true });
}

/** A file shorter than its header says was cut off (a copy that stopped, a full disk). */
function checkNotTruncated(file: string): void {
  const header = Buffer.alloc(100);
  const fd = openSync(file, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  const size = statSync(file).size;
  if (size === 0) return; // a fresh file SQLite has not written yet
  if (read < 100 || header.toString('latin1', 0, 16) !== 'SQLite format 3\0') throw Object.assign(new Error('not a SQLite database'), { code: 'SQLITE_NOTADB' });
  const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
  // The page count in the header is only valid when the change counter matches its copy.
  const pages = header.readUInt32BE(24) === header.readUInt32BE(92) ? header.readUInt32BE(28) : 0;
  if (pages > 0 && size < pageSize * pages) {
    throw Object.assign(new Error(`the file is cut off: ${size} of ${pageSize * pages} bytes`), { code: 'SQLITE_CORRUPT' });
  }
}

/** SQLite and file-system failures as the index errors a person can act on. */
function storeError(err: unknown, dir: string): unknown {
  const code = (err as { code?: string }).code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB') return new LookalikeError('INDEX_DAMAGED', { path: dir, reason: 'index.sqlite is not a SQLite database' }, { cause: err });
  if (code.startsWith('SQLITE_CORRUPT')) return new LookalikeError('INDEX_DAMAGED', { path: dir, reason: message }, { cause: err });
  if (code === 'SQLITE_ERROR' && /no such table/.test(message)) return new LookalikeError('INDEX_DAMAGED', { path: dir, reason: 'index.sqlite is not a Lookalike index' }, { cause: err });
  if (code.startsWith('SQLITE_READONLY') || code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new LookalikeError('INDEX_NOT_WRITABLE', { path: dir, reason: code === 'EROFS' ? 'read-only file system' : 'permission denied' }, { cause: err });
  }
  if (code === 'ENOTDIR' || code === 'EEXIST') return new LookalikeError('INDEX_NOT_A_FOLDER', { path: dir }, { cause: err });
  return err;
}

function blob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
