/**
 * The one place that turns an index location into a store: a folder opens SQLite, a
 * `postgres://…#NAME` location opens PostgreSQL. Everything above works on `Store`.
 */
import { INDEX_FILES } from '../defaults.js';
import { acquireIndexLock, LOCK_FILE } from './lock.js';
import { isStoreUrl, parseLocation } from './location.js';
import { readdirSync, rmSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { SqliteStore } from './sqlite.js';
import type { IndexLock, Store } from './types.js';

/**
 * PostgreSQL's module (and with it pg and pg-copy-streams) is loaded on the first
 * `postgres://` location: a folder index, and `import 'lookalike'`, never load them.
 */
const postgres = () => import('./postgres.js');

export interface OpenOptions {
  /** Make the index (folder and tables, or schema) when missing. */
  create?: boolean;
  readonly?: boolean;
}

export async function openStore(location: string, options: OpenOptions = {}): Promise<Store> {
  return isStoreUrl(location) ? (await postgres()).PgStore.open(location, options) : SqliteStore.open(location, options);
}

/** The index's single-writer lock, taken before the store is opened for writing. */
export async function lockStore(location: string, purpose: string): Promise<IndexLock> {
  return isStoreUrl(location) ? (await postgres()).lockIndex(parseLocation(location), purpose) : acquireIndexLock(location, purpose);
}

/** Deletes a whole index: its folder, or its schema in PostgreSQL (benchmarks' throwaway indexes). */
export async function removeIndex(location: string): Promise<void> {
  if (isStoreUrl(location)) await (await postgres()).dropIndex(parseLocation(location));
  else rmSync(location, { recursive: true, force: true });
}

/**
 * Undoes the creation of an index that never got a manifest (its first run failed before
 * writing anything: every photo unreadable, a refused head): `info` would otherwise find an
 * index that is neither usable nor explained. Called under the writer's lock, store closed.
 * A folder keeps whatever else it holds; the folder itself goes when this run made it.
 */
export async function discardUnfinishedIndex(location: string, options: { folderExisted: boolean }): Promise<void> {
  if (isStoreUrl(location)) return (await postgres()).dropIndex(parseLocation(location));
  const db = path.join(location, INDEX_FILES.database);
  for (const file of [db, `${db}-wal`, `${db}-shm`]) rmSync(file, { force: true });
  if (!options.folderExisted) {
    // The lock file is still there (released after this); the folder goes if nothing else is.
    const left = readdirSync(location).filter((f) => f !== LOCK_FILE);
    if (!left.length) rmSync(location, { recursive: true, force: true });
  }
}

/** After a writer's run: SQLite goes back to a self-contained file; others need nothing. */
export function settleStore(store: Store): void {
  if (store instanceof SqliteStore) store.settle();
}

/**
 * What names an index whatever the spelling of its location (the job queue's name,
 * queue/connection.ts): a folder's real path (symlinks and ../ resolved), or an id kept in
 * the PostgreSQL index itself, since one database answers to many URLs (localhost,
 * 127.0.0.1, a proxy, another user). `create` gives an index without one (made by an older
 * Lookalike) its id; otherwise such an index has none (undefined).
 */
export async function indexIdentity(location: string, options: { create?: boolean } = {}): Promise<string | undefined> {
  if (isStoreUrl(location)) {
    const id = await (await postgres()).pgIndexIdentity(parseLocation(location), options.create === true);
    return id === undefined ? undefined : `postgres:${id}`;
  }
  return realpath(location).catch(() => path.resolve(location));
}
