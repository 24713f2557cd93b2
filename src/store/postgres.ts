/**
 * PostgreSQL store: the shared, durable store that every machine can use. One schema per
 * index (`--index NAME`), so one database holds several catalogs.
 *
 * Reads answer from a snapshot in memory, which keeps the Store interface synchronous and a
 * replica's searches independent of the database: a replica that loses the server keeps
 * answering. The snapshot is loaded at open (items, manifest, files) and by `preload`
 * (vectors, in bulk and in binary), and `refresh` brings it up to date by reading only what
 * changed since its generation: every write stamps the rows it touches with the new
 * generation, and removals leave a tombstone, so a replica asks "what is newer than g?".
 *
 * Writes keep the SQLite store's promises: one transaction per batch (an interrupted run
 * loses at most the batch in flight), failures recorded and cleared with the vectors. Each
 * write bumps the generation and notifies channel `lookalike` in the same transaction;
 * replicas LISTEN, and poll the generation too, for notifications lost while disconnected.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { STORE_POLL_MS } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { copyVectors } from './copy-binary.js';
import { indexArgs, parseLocation, type PgLocation } from './location.js';
import type { DbSearchOptions, ImageSource, IndexLock, IndexManifest, ItemFailure, ItemVectors, Store, StoredItem, TextMatch, VectorKind, VectorMatrix } from './types.js';

/** The channel writers notify on; the payload is `<schema>:<generation>`. */
export const NOTIFY_CHANNEL = 'lookalike';

/** Advisory-lock class ids (the first key of the two-key form): migrations, and the writer. */
const LOCK_MIGRATE = 0x4c4b01;
const LOCK_WRITER = 0x4c4b02;

/**
 * The schema's history, owned by the project: migration i takes a schema from version i to
 * i + 1. A database whose version is above ours was written by a newer Lookalike and is
 * refused rather than misread.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
   INSERT INTO meta (key, value) VALUES ('generation', '0');
   CREATE TABLE items (
     seq bigserial UNIQUE, id text PRIMARY KEY, image text NOT NULL, metadata text NOT NULL,
     gen bigint NOT NULL);
   CREATE INDEX items_gen ON items (gen);
   CREATE TABLE vectors (
     id text PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
     vmax bytea NOT NULL, vavg bytea NOT NULL, colour bytea NOT NULL);
   CREATE TABLE failures (id text PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE, reason text NOT NULL);
   CREATE TABLE removed (id text NOT NULL, gen bigint NOT NULL);
   CREATE INDEX removed_gen ON removed (gen);
   CREATE TABLE files (name text PRIMARY KEY, bytes bytea NOT NULL, gen bigint NOT NULL);`,
  // 2: the image behind each vector (store/types.ts ImageSource), so reruns notice replaced photos.
  `ALTER TABLE vectors ADD COLUMN image_hash text, ADD COLUMN image_stamp text;`,
  // 3: full-text search of items' text (searchText): the product name weighs A, every other
  // metadata value B, stemmed by the english configuration; kept by PostgreSQL itself.
  // "T-shirt" is one word, as search/text.ts textTerms reads queries. IF NOT EXISTS: a schema
  // rolled back by hand to an older version may still have them.
  `ALTER TABLE items ADD COLUMN IF NOT EXISTS text_search tsvector GENERATED ALWAYS AS (
     setweight(to_tsvector('english'::regconfig, replace(lower(coalesce(metadata::jsonb ->> 'productDisplayName', '')), 't-shirt', 'tshirt')), 'A')
     || setweight(jsonb_to_tsvector('english'::regconfig, metadata::jsonb - 'productDisplayName', '["string"]'), 'B')) STORED;
   CREATE INDEX IF NOT EXISTS items_text_search ON items USING gin (text_search);`,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

const COLUMN: Record<VectorKind, string> = { max: 'vmax', avg: 'vavg', colour: 'colour' };

interface Snapshot {
  generation: number;
  manifest?: IndexManifest;
  /** Insertion (seq) order, which is the matrices' row order. */
  items: Map<string, StoredItem>;
  embedded: Set<string>;
  failures: ItemFailure[];
  files: Map<string, Buffer>;
  matrices: Partial<Record<VectorKind, VectorMatrix>>;
}

/** Pool clients given an error listener (PgStore.connect). */
const listened = new WeakSet<pg.PoolClient>();

export class PgStore implements Store {
  readonly location: string;
  readonly folder = undefined;
  private snap: Snapshot;
  private closed = false;
  /** The index has the pgvector column (vdb halfvec + HNSW): `--search db` works. */
  canSearch = false;
  private refreshing?: Promise<boolean>;
  /** The snapshot's generation and the one before it, with when each was last confirmed the latest (confirmedAt). */
  private confirmed: Array<{ generation: number; at: number }> = [];

  private constructor(location: string, private readonly where: PgLocation, private readonly pool: pg.Pool, snap: Snapshot) {
    this.location = location;
    this.snap = snap;
  }

  private get schema(): string {
    return `"${this.where.index}"`;
  }

  /**
   * Connects and reads the snapshot. `create` makes the schema when missing (under an
   * advisory lock, so two first runs do not race); otherwise a missing index is
   * INDEX_NOT_FOUND. An older schema is migrated, a newer one refused (STORE_TOO_NEW).
   */
  static async open(location: string, options: { create?: boolean; readonly?: boolean } = {}): Promise<PgStore> {
    const where = parseLocation(location);
    let pool: pg.Pool;
    try {
      pool = new pg.Pool(clientConfig(where, { max: 3, connectionTimeoutMillis: 5000, idleTimeoutMillis: 10_000, application_name: 'lookalike' }));
    } catch (err) {
      throw pgError(err, where, 'connect');
    }
    // A pooled connection that drops while idle (a server restart) must not end the process.
    pool.on('error', () => {});
    try {
      const client = await pool.connect();
      try {
        await migrate(client, where, options.create === true && options.readonly !== true);
      } finally {
        client.release();
      }
      const store = new PgStore(location, where, pool, emptySnapshot());
      await store.reload();
      store.canSearch = (await pool.query(`SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'vdb'`, [`"${where.index}".vectors`])).rowCount === 1;
      return store;
    } catch (err) {
      await pool.end().catch(() => {});
      throw pgError(err, where, options.create ? 'create tables' : 'read the index');
    }
  }

  /** Reads the whole snapshot (not the vectors: `preload`), consistently. */
  private async reload(): Promise<void> {
    const at = Date.now();
    const next = await this.read(async (c) => {
      const generation = await readGeneration(c, this.schema);
      const rows = (await c.query<{ id: string; image: string; metadata: string }>(`SELECT id, image, metadata FROM ${this.schema}.items ORDER BY seq`)).rows;
      const items = new Map(rows.map((r) => [r.id, { id: r.id, image: r.image, metadata: JSON.parse(r.metadata) as Record<string, string> }]));
      const embedded = new Set((await c.query<{ id: string }>(`SELECT id FROM ${this.schema}.vectors`)).rows.map((r) => r.id));
      const snap: Snapshot = { generation, items, embedded, failures: [], files: new Map(), matrices: {} };
      await this.readSmall(c, snap);
      return snap;
    });
    this.snap = next;
    this.confirm(next.generation, at);
  }

  private confirm(generation: number, at: number): void {
    if (this.confirmed[0]?.generation === generation) this.confirmed[0].at = at;
    else this.confirmed = [{ generation, at }, ...this.confirmed.slice(0, 1)];
  }

  confirmedAt(generation: number): number | undefined {
    return this.confirmed.find((c) => c.generation === generation)?.at;
  }

  /** Manifest, failures and files: small, read whole on every change. */
  private async readSmall(c: pg.PoolClient, snap: Snapshot, sinceGeneration = -1): Promise<void> {
    const manifest = (await c.query<{ value: string }>(`SELECT value FROM ${this.schema}.meta WHERE key = 'manifest'`)).rows[0];
    snap.manifest = manifest ? (JSON.parse(manifest.value) as IndexManifest) : undefined;
    snap.failures = (await c.query<ItemFailure>(`SELECT f.id, f.reason FROM ${this.schema}.failures f JOIN ${this.schema}.items i ON i.id = f.id ORDER BY i.seq`)).rows;
    const names = (await c.query<{ name: string }>(`SELECT name FROM ${this.schema}.files`)).rows.map((r) => r.name);
    for (const name of [...snap.files.keys()]) if (!names.includes(name)) snap.files.delete(name);
    const changed = await c.query<{ name: string; bytes: Buffer }>({ text: `SELECT name, bytes FROM ${this.schema}.files WHERE gen > $1`, values: [sinceGeneration] });
    for (const r of changed.rows) snap.files.set(r.name, r.bytes);
  }

  /** A consistent read: one REPEATABLE READ transaction, so every query sees one generation. */
  private async read<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const out = await body(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw pgError(err, this.where, 'read the index');
    } finally {
      c.release();
    }
  }

  /**
   * One write transaction: bumps the generation, runs `body` with it, notifies replicas,
   * commits, then catches the snapshot up (which reads back exactly what was written).
   * `body` returning false means nothing changed: rolled back, generation kept.
   */
  private async write(body: (c: pg.PoolClient, generation: number) => Promise<boolean | void>): Promise<void> {
    const c = await this.connect();
    try {
      await c.query('BEGIN');
      const bumped = await c.query<{ value: string }>(`UPDATE ${this.schema}.meta SET value = (value::bigint + 1)::text WHERE key = 'generation' RETURNING value`);
      const generation = Number(bumped.rows[0].value);
      if ((await body(c, generation)) === false) {
        await c.query('ROLLBACK');
        return;
      }
      await c.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, `${this.where.index}:${generation}`]);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw pgError(err, this.where, 'write the index');
    } finally {
      c.release();
    }
    await this.refresh();
  }

  private async connect(): Promise<pg.PoolClient> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw pgError(err, this.where, 'connect');
    }
    // A connection cut while a client is checked out and between queries (a database
    // restart, a network drop) is emitted on the client, where the pool does not listen:
    // without a listener it would end the process. The failure reaches the caller through
    // its next query instead.
    if (!listened.has(client)) { listened.add(client); client.on('error', () => {}); }
    return client;
  }

  getManifest(): IndexManifest | undefined {
    return this.snap.manifest;
  }

  async setManifest(manifest: IndexManifest): Promise<void> {
    await this.write(async (c) => {
      await c.query(`INSERT INTO ${this.schema}.meta (key, value) VALUES ('manifest', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [JSON.stringify(manifest)]);
    });
  }

  async upsertItems(items: StoredItem[]): Promise<void> {
    if (!items.length) return;
    await this.write(async (c, generation) => {
      const r = await c.query(`INSERT INTO ${this.schema}.items (id, image, metadata, gen)
        SELECT id, image, metadata, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS t (id, image, metadata)
        ON CONFLICT (id) DO UPDATE SET image = excluded.image, metadata = excluded.metadata, gen = excluded.gen
        WHERE items.image IS DISTINCT FROM excluded.image OR items.metadata IS DISTINCT FROM excluded.metadata`,
      [items.map((i) => i.id), items.map((i) => i.image), items.map((i) => JSON.stringify(i.metadata)), generation]);
      return (r.rowCount ?? 0) > 0;
    });
  }

  async deleteItems(ids: string[]): Promise<void> {
    if (!ids.length) return;
    await this.write(async (c, generation) => {
      const r = await c.query(`DELETE FROM ${this.schema}.items WHERE id = ANY($1::text[]) RETURNING id`, [ids]);
      if (!r.rowCount) return false;
      await c.query(`INSERT INTO ${this.schema}.removed (id, gen) SELECT unnest($1::text[]), $2`, [r.rows.map((x: { id: string }) => x.id), generation]);
    });
  }

  async putVectors(batch: ItemVectors[], failures: ItemFailure[] = []): Promise<void> {
    if (!batch.length && !failures.length) return;
    await this.write(async (c, generation) => {
      if (batch.length) {
        const ids = batch.map((v) => v.id);

        await c.query(`INSERT INTO ${this.schema}.vectors (id, vmax, vavg, colour, image_hash, image_stamp)
          SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bytea[], $5::text[], $6::text[])
          ON CONFLICT (id) DO UPDATE SET vmax = excluded.vmax, vavg = excluded.vavg, colour = excluded.colour,
            image_hash = excluded.image_hash, image_stamp = excluded.image_stamp`,
        [ids, batch.map((v) => blob(v.max)), batch.map((v) => blob(v.avg)), batch.map((v) => blob(v.colour)),
          batch.map((v) => v.source?.hash ?? null), batch.map((v) => v.source?.stamp ?? null)]);
        if (await this.ensureVectorColumn(c, batch[0].max.length)) {
          // The normalised max-pooled vector, half precision, for pgvector's HNSW (halfvec: the
          // plain vector type indexes at most 2,000 dimensions, ResNet50 has 2,048).
          await c.query(`UPDATE ${this.schema}.vectors v SET vdb = t.h::halfvec FROM unnest($1::text[], $2::text[]) AS t (id, h) WHERE v.id = t.id`,
            [ids, batch.map((v) => halfvecLiteral(v.max))]);
        }
        await c.query(`DELETE FROM ${this.schema}.failures WHERE id = ANY($1::text[])`, [ids]);
        await c.query(`UPDATE ${this.schema}.items SET gen = $2 WHERE id = ANY($1::text[])`, [ids, generation]);
      }
      if (failures.length) {
        await c.query(`INSERT INTO ${this.schema}.failures (id, reason) SELECT * FROM unnest($1::text[], $2::text[])
          ON CONFLICT (id) DO UPDATE SET reason = excluded.reason`, [failures.map((f) => f.id), failures.map((f) => f.reason)]);
      }
    });
  }

  private vectorChecked = false;

  /**
   * Where the server has pgvector, the first vectors written add the search column and its
   * HNSW index (once, inside the writing transaction; a savepoint keeps a refusal, e.g. no
   * right to create the extension, from failing the batch). Elsewhere: nothing, and false.
   */
  private async ensureVectorColumn(c: pg.PoolClient, dim: number): Promise<boolean> {
    if (this.canSearch || this.vectorChecked) return this.canSearch;
    this.vectorChecked = true;
    const available = await c.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`);
    if (!available.rowCount) return false;
    await c.query('SAVEPOINT vector_column');
    try {
      await c.query('CREATE EXTENSION IF NOT EXISTS vector');
      await c.query(`ALTER TABLE ${this.schema}.vectors ADD COLUMN IF NOT EXISTS vdb halfvec(${Number(dim)})`);
      await c.query(`CREATE INDEX IF NOT EXISTS vectors_vdb_hnsw ON ${this.schema}.vectors USING hnsw (vdb halfvec_cosine_ops)`);
      await c.query('RELEASE SAVEPOINT vector_column');
      this.canSearch = true;
    } catch {
      await c.query('ROLLBACK TO SAVEPOINT vector_column');
    }
    return this.canSearch;
  }

  /**
   * `--search db`: top-k by cosine in SQL, through the HNSW index, filters as WHERE clauses
   * (case-insensitive, as in memory). `hnsw.ef_search` is raised from pgvector's 40 so that
   * filtered and k > 10 searches still find their k, and iterative scans are asked for where
   * the server's pgvector has them (0.8+).
   */
  async searchVectors(query: Float32Array, options: DbSearchOptions): Promise<Array<{ id: string; score: number }>> {
    if (!this.canSearch) throw new LookalikeError('BAD_OPTION', { message: `search "db" (answered by PostgreSQL) needs the pgvector extension in the database (${this.where.server}/${this.where.database}); without it, search "exact" or "ann".` });
    const values: unknown[] = [halfvecLiteral(query), options.k];
    const where: string[] = ['v.vdb IS NOT NULL'];
    for (const [field, accepted] of Object.entries(options.filters ?? {})) {
      if (!accepted.length) continue;
      values.push(field, accepted.map((a) => a.toLowerCase()));
      where.push(`lower(i.metadata::jsonb ->> $${values.length - 1}) = ANY($${values.length}::text[])`);
    }
    if (options.text?.length) {
      values.push(options.text.join(' '));
      where.push(`i.text_search @@ plainto_tsquery('english', $${values.length})`);
    }
    if (options.excludeId !== undefined) {
      values.push(options.excludeId);
      where.push(`v.id <> $${values.length}`);
    }
    const c = await this.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL hnsw.ef_search = 200');
      await c.query('SAVEPOINT scan');
      await c.query('SET LOCAL hnsw.iterative_scan = relaxed_order').then(() => c.query('RELEASE SAVEPOINT scan'), () => c.query('ROLLBACK TO SAVEPOINT scan'));
      const r = await c.query<{ id: string; d: number }>(`SELECT v.id, (v.vdb <=> $1::halfvec) AS d FROM ${this.schema}.vectors v JOIN ${this.schema}.items i ON i.id = v.id
        WHERE ${where.join(' AND ')} ORDER BY v.vdb <=> $1::halfvec LIMIT $2`, values);
      await c.query('COMMIT');
      // relaxed_order may return rows slightly out of order: sort, then apply the threshold.
      const hits = r.rows.map((row) => ({ id: row.id, score: 1 - Number(row.d) })).sort((a, b) => b.score - a.score);
      return options.threshold === undefined ? hits : hits.filter((h) => h.score >= options.threshold!);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw pgError(err, this.where, 'search');
    } finally {
      c.release();
    }
  }

  /**
   * Items whose text search vector holds every term (plainto_tsquery: stemmed, ANDed), best
   * first by ts_rank (the product name weighs most).
   */
  async searchText(terms: string[]): Promise<TextMatch[]> {
    if (!terms.length) return [];
    // One statement, no transaction around it: one round trip.
    const c = await this.connect();
    try {
      const r = await c.query<{ id: string; score: number }>(
        `SELECT i.id, ts_rank(i.text_search, q) AS score FROM ${this.schema}.items i, plainto_tsquery('english', $1) q
         WHERE i.text_search @@ q ORDER BY score DESC, i.seq`, [terms.join(' ')]);
      return r.rows.map((row) => ({ id: row.id, score: Number(row.score) }));
    } catch (err) {
      throw pgError(err, this.where, 'search text');
    } finally {
      c.release();
    }
  }

  getFile(name: string): Buffer | undefined {
    return this.snap.files.get(name);
  }

  async putFile(name: string, bytes: Buffer): Promise<void> {
    await this.write(async (c, generation) => {
      await c.query(`INSERT INTO ${this.schema}.files (name, bytes, gen) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET bytes = excluded.bytes, gen = excluded.gen`, [name, bytes, generation]);
    });
  }

  async deleteFile(name: string): Promise<void> {
    await this.write(async (c) => (((await c.query(`DELETE FROM ${this.schema}.files WHERE name = $1`, [name])).rowCount ?? 0) > 0));
  }

  listItems(): StoredItem[] {
    return [...this.snap.items.values()];
  }

  getItem(id: string): StoredItem | undefined {
    return this.snap.items.get(id);
  }

  embeddedIds(): Set<string> {
    return new Set(this.snap.embedded);
  }

  /** Straight from the database: replicas never need them, so the snapshot does not hold them. */
  async imageSources(): Promise<Map<string, ImageSource>> {
    const rows = await this.read(async (c) => (await c.query<{ id: string; image_hash: string; image_stamp: string | null }>(
      `SELECT id, image_hash, image_stamp FROM ${this.schema}.vectors WHERE image_hash IS NOT NULL`)).rows);
    return new Map(rows.map((r) => [r.id, r.image_stamp ? { hash: r.image_hash, stamp: r.image_stamp } : { hash: r.image_hash }]));
  }

  async updateStamps(stamps: Array<{ id: string; stamp: string }>): Promise<void> {
    if (!stamps.length) return;
    // Same bytes, same vectors: no generation bump, nothing for replicas to reload.
    const c = await this.connect();
    try {
      await c.query(`UPDATE ${this.schema}.vectors v SET image_stamp = t.s FROM unnest($1::text[], $2::text[]) AS t (id, s) WHERE v.id = t.id`,
        [stamps.map((s) => s.id), stamps.map((s) => s.stamp)]);
    } catch (err) {
      throw pgError(err, this.where, 'write the index');
    } finally {
      c.release();
    }
  }

  failures(): ItemFailure[] {
    return [...this.snap.failures];
  }

  count(): { items: number; embedded: number; failed: number } {
    return { items: this.snap.items.size, embedded: this.snap.embedded.size, failed: this.snap.failures.length };
  }

  generation(): number {
    return this.snap.generation;
  }

  loadMatrix(kind: VectorKind): VectorMatrix {
    const m = this.snap.matrices[kind];
    if (!m) throw new Error(`PgStore: the ${kind} vectors were not preloaded (call preload(['${kind}']) first)`);
    return m;
  }

  /**
   * Reads every embedded vector of these kinds with one COPY BINARY (store/copy-binary.ts:
   * raw bytes straight into one contiguous matrix per kind; measured against a plain SELECT
   * in the README, "1 database + N replicas"). Rows stamped after the snapshot's generation are left
   * for the next refresh, so matrices and snapshot always agree.
   */
  async preload(kinds: VectorKind[]): Promise<void> {
    const wanted = [...new Set(kinds)].filter((k) => !this.snap.matrices[k]);
    if (!wanted.length) return;
    const snap = this.snap;
    const loaded = await this.read(async (c) => {
      const generation = await readGeneration(c, this.schema);
      if (generation !== snap.generation) return undefined;
      const cols = wanted.map((k) => `v.${COLUMN[k]}`).join(', ');
      return copyVectors(c, `SELECT v.id, ${cols} FROM ${this.schema}.vectors v JOIN ${this.schema}.items i ON i.id = v.id ORDER BY i.seq`, wanted.length, snap.embedded.size);
    });
    if (!loaded) {
      // The index changed between open and now: catch up first (cheap, by generation), then load.
      await this.refresh();
      return this.preload(kinds);
    }
    const { ids } = loaded;
    wanted.forEach((kind, k) => { snap.matrices[kind] = { ids, data: loaded.matrices[k], dim: loaded.dims[k] }; });
    snap.embedded = new Set(ids);
  }

  /**
   * Catches up with writes made since the snapshot's generation (by any process): changed
   * and new items with their vectors (for the kinds loaded), tombstones of removed ones,
   * and the small tables whole. Matrices are rebuilt, not patched in place, so a search
   * running on the old ones is never disturbed. Concurrent calls share one round.
   */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.catchUp().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  private async catchUp(): Promise<boolean> {
    const old = this.snap;
    const kinds = Object.keys(old.matrices) as VectorKind[];
    const at = Date.now();
    const delta = await this.read(async (c) => {
      const generation = await readGeneration(c, this.schema);
      if (generation === old.generation) return undefined;
      const cols = kinds.map((k) => `, v.${COLUMN[k]}`).join('');
      const changed = await rowsOf(c, `SELECT i.id, i.image, i.metadata, v.id IS NOT NULL AS embedded${cols} FROM ${this.schema}.items i LEFT JOIN ${this.schema}.vectors v ON v.id = i.id WHERE i.gen > $1 ORDER BY i.seq`,
        [old.generation]);
      const removed = await c.query<{ id: string }>({ text: `SELECT id FROM ${this.schema}.removed WHERE gen > $1 ORDER BY gen`, values: [old.generation] });
      const snap: Snapshot = { generation, items: new Map(old.items), embedded: new Set(old.embedded), failures: [], files: new Map(old.files), matrices: {} };
      await this.readSmall(c, snap, old.generation);
      return { snap, changed, removed: removed.rows.map((r) => r.id) };
    });
    if (!delta) {
      this.confirm(old.generation, at);
      return false;
    }
    const { snap } = delta;
    for (const id of delta.removed) {
      snap.items.delete(id);
      snap.embedded.delete(id);
    }
    const fresh = new Map<string, Buffer[]>();
    for (const row of delta.changed) {
      const id = String(row[0]);
      // A removed and re-added id goes to the end, where its new seq puts it.
      if (delta.removed.includes(id)) snap.items.delete(id);
      snap.items.set(id, { id, image: String(row[1]), metadata: JSON.parse(String(row[2])) as Record<string, string> });
      if (row[3] === true) {
        snap.embedded.add(id);
        fresh.set(id, row.slice(4) as Buffer[]);
      } else {
        snap.embedded.delete(id);
      }
    }
    if (kinds.length) {
      const ids = [...snap.items.keys()].filter((id) => snap.embedded.has(id));
      kinds.forEach((kind, k) => {
        const before = old.matrices[kind]!;
        const rowOf = new Map(before.ids.map((id, r) => [id, r]));
        const dim = before.dim || (fresh.values().next().value?.[k]?.byteLength ?? 0) / 4;
        const data = new Float32Array(ids.length * dim);
        const bytes = new Uint8Array(data.buffer);
        ids.forEach((id, r) => {
          const row = fresh.get(id);
          if (row) bytes.set(row[k], r * dim * 4);
          else data.set(before.data.subarray(rowOf.get(id)! * dim, (rowOf.get(id)! + 1) * dim), r * dim);
        });
        snap.matrices[kind] = { ids, data, dim };
      });
    }
    this.snap = snap;
    this.confirm(snap.generation, at);
    return true;
  }

  /**
   * Follows other writers: LISTEN on a dedicated connection (reconnecting with back-off
   * when it drops) and a poll of the generation every STORE_POLL_MS, for notifications
   * lost while disconnected. `onChange` runs after a refresh that found changes.
   */
  follow(onChange: () => void, onError: (err: unknown) => void = () => {}): () => Promise<void> {
    let stopped = false;
    let listener: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    const check = () => {
      if (stopped) return;
      this.refresh().then((changed) => { if (changed && !stopped) onChange(); }, onError);
    };
    const listen = async () => {
      if (stopped) return;
      let client: pg.Client;
      try {
        client = new pg.Client(clientConfig(this.where, { connectionTimeoutMillis: 5000, application_name: 'lookalike replica' }));
      } catch (err) {
        onError(pgError(err, this.where, 'connect'));
        return;
      }
      const again = () => {
        if (listener === client) listener = undefined;
        client.end().catch(() => {});
        if (!stopped) retry = setTimeout(() => void listen(), 1000);
      };
      client.on('error', again);
      client.on('notification', (n) => { if (n.payload?.startsWith(`${this.where.index}:`)) check(); });
      try {
        await client.connect();
        await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
        listener = client;
        if (stopped) await client.end();
        else check(); // whatever was missed while not listening
      } catch (err) {
        onError(pgError(err, this.where, 'connect'));
        again();
      }
    };
    void listen();
    const poll = setInterval(check, STORE_POLL_MS);
    poll.unref();
    return async () => {
      stopped = true;
      clearInterval(poll);
      if (retry) clearTimeout(retry);
      await listener?.end().catch(() => {});
    };
  }

  /**
   * The writer's lock: a session advisory lock, held on its own connection for the run.
   * The server drops it with the connection, so a kill -9 never leaves an index stuck.
   */
  async lock(purpose: string): Promise<IndexLock> {
    return lockIndex(this.where, purpose);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => {});
  }
}

/** Takes the writer's advisory lock of an index, or throws INDEX_LOCKED naming the holder. */
export async function lockIndex(where: PgLocation, purpose: string): Promise<IndexLock> {
  const name = `${purpose}, pid ${process.pid} on ${os.hostname()}, since ${new Date().toISOString()}`.slice(0, 63);
  let client: pg.Client;
  try {
    client = new pg.Client(clientConfig(where, { connectionTimeoutMillis: 5000, application_name: name }));
  } catch (err) {
    throw pgError(err, where, 'lock the index');
  }
  client.on('error', () => {});
  try {
    await client.connect();
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_WRITER, where.index]);
    if (!got.rows[0].ok) {
      const holder = await client.query<{ application_name: string }>(`SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = hashtext($2)::oid AND l.granted`, [LOCK_WRITER, where.index]).catch(() => ({ rows: [] }));
      throw new LookalikeError('INDEX_LOCKED', { path: `${where.server}/${where.database} (index ${where.index})`, holder: holder.rows[0]?.application_name || 'another connection' });
    }
  } catch (err) {
    await client.end().catch(() => {});
    throw pgError(err, where, 'lock the index');
  }
  return { release: () => client.end().catch(() => {}) };
}

/** The id kept in an index (store/open.ts indexIdentity); INDEX_NOT_FOUND when there is no index. */
export async function pgIndexIdentity(where: PgLocation, create: boolean): Promise<string | undefined> {
  let client: pg.Client | undefined;
  try {
    client = new pg.Client(clientConfig(where, { connectionTimeoutMillis: 5000, application_name: 'lookalike' }));
    client.on('error', () => {});
    await client.connect();
    const exists = await client.query('SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = $2', [where.index, 'meta']);
    if (!exists.rowCount) throw new LookalikeError('INDEX_NOT_FOUND', { path: `${where.server}/${where.database} (index ${where.index})`, args: indexArgs(`${where.url}#${where.index}`) });
    const read = async () => (await client!.query<{ value: string }>(`SELECT value FROM "${where.index}".meta WHERE key = 'identity'`)).rows[0]?.value;
    const found = await read();
    if (found || !create) return found;
    // Two first writers may race: the first id stays, both read it back.
    await client.query(`INSERT INTO "${where.index}".meta (key, value) VALUES ('identity', $1) ON CONFLICT (key) DO NOTHING`, [randomUUID()]);
    return await read();
  } catch (err) {
    throw pgError(err, where, 'read the index');
  } finally {
    await client?.end().catch(() => {});
  }
}

/** Drops an index's schema and everything in it. */
export async function dropIndex(where: PgLocation): Promise<void> {
  let client: pg.Client | undefined;
  try {
    client = new pg.Client(clientConfig(where, { application_name: 'lookalike' }));
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${where.index}" CASCADE`);
  } catch (err) {
    throw pgError(err, where, 'drop the index');
  } finally {
    await client?.end().catch(() => {});
  }
}

/** Creates or upgrades the index's schema under an advisory lock; refuses a newer one. */
async function migrate(c: pg.PoolClient, where: PgLocation, create: boolean): Promise<void> {
  const schema = `"${where.index}"`;
  const version = async () => {
    // pg_tables, not to_regclass: a plain query sees what another run committed while we
    // waited for the lock (the catalog cache behind to_regclass may not yet).
    const exists = await c.query('SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = $2', [where.index, 'meta']);
    if (!exists.rowCount) return 0;
    const v = await c.query<{ value: string }>(`SELECT value FROM ${schema}.meta WHERE key = 'schema_version'`);
    return v.rows[0] ? Number(v.rows[0].value) : 1;
  };
  let found = await version();
  if (found > SCHEMA_VERSION) throw new LookalikeError('STORE_TOO_NEW', { index: where.index, server: `${where.server}/${where.database}`, found, known: SCHEMA_VERSION });
  if (found === SCHEMA_VERSION) return;
  if (found === 0 && !create) throw new LookalikeError('INDEX_NOT_FOUND', { path: `${where.server}/${where.database} (index ${where.index})`, args: indexArgs(`${where.url}#${where.index}`) });
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_MIGRATE, where.index]);
    found = await version(); // another process may have migrated while we waited
    if (found > SCHEMA_VERSION) throw new LookalikeError('STORE_TOO_NEW', { index: where.index, server: `${where.server}/${where.database}`, found, known: SCHEMA_VERSION });
    if (found === 0) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await c.query(`SET LOCAL search_path TO ${schema}`);
    for (let v = found; v < SCHEMA_VERSION; v++) await c.query(MIGRATIONS[v]);
    await c.query(`INSERT INTO ${schema}.meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(SCHEMA_VERSION)]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Rows as arrays (changes since a generation: few rows, so bytea as text is fine). */
async function rowsOf(c: pg.PoolClient, text: string, values: unknown[]): Promise<unknown[][]> {
  return (await c.query({ text, values, rowMode: 'array' })).rows as unknown[][];
}

async function readGeneration(c: pg.PoolClient, schema: string): Promise<number> {
  const r = await c.query<{ value: string }>(`SELECT value FROM ${schema}.meta WHERE key = 'generation'`);
  return Number(r.rows[0]?.value ?? 0);
}

function emptySnapshot(): Snapshot {
  return { generation: -1, items: new Map(), embedded: new Set(), failures: [], files: new Map(), matrices: {} };
}

/**
 * How pg connects to a location. An sslmode in the URL keeps libpq's meaning (require:
 * encrypted, certificate not checked; verify-ca / verify-full: checked against sslrootcert),
 * the one PostgreSQL's documentation and every other client give it; pg's own reading of
 * sslmode also prints a warning of several lines on every start.
 */
export function clientConfig(where: PgLocation, extra: Omit<pg.PoolConfig, 'connectionString'> = {}): pg.PoolConfig {
  const compat = /[?&]sslmode=/.test(where.url) && !/[?&]uselibpqcompat=/.test(where.url);
  return { ...extra, connectionString: compat ? `${where.url}${where.url.includes('?') ? '&' : '?'}uselibpqcompat=true` : where.url };
}

/** Node's and PostgreSQL's ways of saying a TLS handshake or certificate check failed. */
const TLS_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO']);

/**
 * PostgreSQL and network failures as errors a person can act on: which server, which user,
 * what to change. Anything else is passed on (a bug, shown as INTERNAL).
 */
export function pgError(err: unknown, where: PgLocation, action: string): unknown {
  if (err instanceof LookalikeError) return err;
  const e = err as { code?: string; message?: string };
  const code = e.code ?? '';
  const reason = (e.message ?? String(err)).split('\n')[0];
  const base = { server: where.server, user: where.user, database: where.database };
  const syscall = (err as { syscall?: string }).syscall;
  // sslrootcert / sslcert / sslkey name files pg reads before it connects.
  if (syscall === 'open' && (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR')) {
    return new LookalikeError('STORE_TLS_FAILED', { ...base, reason: `cannot read the certificate file ${(err as { path?: string }).path ?? ''}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'it is a folder'}` }, { cause: err });
  }
  if (TLS_CODES.has(code) || /does not support SSL|SSL|TLS|certificate|sslrootcert/i.test(reason)) {
    const why = /does not support SSL/i.test(reason) ? 'the server does not offer TLS'
      : /verify-ca requires/.test(reason) ? 'sslmode=verify-ca needs sslrootcert=FILE, the CA that signed the server\'s certificate' : reason;
    return new LookalikeError('STORE_TLS_FAILED', { ...base, reason: why }, { cause: err });
  }
  // A socket folder (?host=/run/postgresql) with no server socket in it.
  if (syscall === 'connect' && (code === 'ENOENT' || code === 'EACCES')) {
    return new LookalikeError('STORE_UNREACHABLE', { ...base, reason: code === 'ENOENT' ? 'no server socket there' : 'permission denied on its socket' }, { cause: err });
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', '57P01', '57P02', '57P03'].includes(code)
    || /timeout|Connection terminated|connection refused/i.test(reason)) {
    return new LookalikeError('STORE_UNREACHABLE', { ...base, reason: code === 'ENOTFOUND' ? `unknown host` : reason }, { cause: err });
  }
  if (code === '28P01' || code === '28000' || /password/i.test(reason)) return new LookalikeError('STORE_AUTH_FAILED', { ...base, reason }, { cause: err });
  if (code === '3D000') return new LookalikeError('STORE_DATABASE_MISSING', base, { cause: err });
  if (code === '42501') return new LookalikeError('STORE_PERMISSION_DENIED', { ...base, action, reason }, { cause: err });
  if (code === '42P01' || code === '3F000') return new LookalikeError('INDEX_DAMAGED', { path: `${where.server}/${where.database} (index ${where.index})`, reason }, { cause: err });
  return err;
}

/** pgvector's text form of a vector, normalised (cosine over unit vectors). */
function halfvecLiteral(v: Float32Array): string {
  let norm = 0;
  for (const x of v) norm += x * x;
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  return `[${Array.from(v, (x) => (x * scale).toPrecision(6)).join(',')}]`;
}

function blob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
