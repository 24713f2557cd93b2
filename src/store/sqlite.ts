/**
 * SQLite store (better-sqlite3): one file, `index.sqlite`, in the index folder.
 * Vectors are float32 blobs. Every batch of vectors is one transaction, which is what
 * makes indexing resumable: an interrupted run loses at most the batch in flight.
 *
 * Loading 31k x 2048 blobs row by row costs about a second, so the contiguous matrix is
 * also cached as a flat file keyed by the store's generation; serve starts from it.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { INDEX_FILES } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import type { IndexManifest, ItemFailure, ItemVectors, Store, StoredItem, VectorKind, VectorMatrix } from './types.js';

const DB_FILE = INDEX_FILES.database;

export function indexExists(dir: string): boolean {
  return existsSync(path.join(dir, DB_FILE));
}

export class SqliteStore implements Store {
  readonly location: string;
  private readonly db: Database.Database;
  private readonly readonly: boolean;

  private constructor(dir: string, db: Database.Database, readonly: boolean) {
    this.location = dir;
    this.db = db;
    this.readonly = readonly;
  }

  /** Opens an existing index; with `create`, makes the folder and schema when missing. */
  static open(dir: string, options: { create?: boolean; readonly?: boolean } = {}): SqliteStore {
    const file = path.join(dir, DB_FILE);
    if (!existsSync(file)) {
      if (!options.create) throw new LookalikeError('INDEX_NOT_FOUND', { path: dir });
      mkdirSync(dir, { recursive: true });
    }
    const db = new Database(file, { readonly: options.readonly ?? false });
    if (!options.readonly) {
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
          vmax BLOB NOT NULL, vavg BLOB NOT NULL, colour BLOB NOT NULL
        );
        CREATE TABLE IF NOT EXISTS failures (
          id TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
          reason TEXT NOT NULL
        );
        INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
      `);
      db.pragma('foreign_keys = ON');
    }
    return new SqliteStore(dir, db, options.readonly ?? false);
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
    const put = this.db.prepare(`INSERT OR REPLACE INTO vectors (id, vmax, vavg, colour) VALUES (?, ?, ?, ?)`);
    const clear = this.db.prepare(`DELETE FROM failures WHERE id = ?`);
    const fail = this.db.prepare(`INSERT OR REPLACE INTO failures (id, reason) VALUES (?, ?)`);
    this.db.transaction(() => {
      for (const v of batch) {
        put.run(v.id, blob(v.max), blob(v.avg), blob(v.colour));
        clear.run(v.id);
      }
      for (const f of failures) fail.run(f.id, f.reason);
      this.bump();
    })();
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

  close(): void {
    this.db.close();
  }

  private bump(): void {
    this.db.prepare(`UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'`).run();
  }
}

function blob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
