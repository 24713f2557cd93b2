/**
 * The one place that turns an index location into a store: a folder opens SQLite, a
 * `postgres://…#NAME` location opens PostgreSQL. Everything above works on `Store`.
 */
import { acquireIndexLock } from './lock.js';
import { isStoreUrl, parseLocation } from './location.js';
import { rmSync } from 'node:fs';
import { dropIndex, lockIndex, PgStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { IndexLock, Store } from './types.js';

export interface OpenOptions {
  /** Make the index (folder and tables, or schema) when missing. */
  create?: boolean;
  readonly?: boolean;
}

export async function openStore(location: string, options: OpenOptions = {}): Promise<Store> {
  return isStoreUrl(location) ? PgStore.open(location, options) : SqliteStore.open(location, options);
}

/** The index's single-writer lock, taken before the store is opened for writing. */
export async function lockStore(location: string, purpose: string): Promise<IndexLock> {
  return isStoreUrl(location) ? lockIndex(parseLocation(location), purpose) : acquireIndexLock(location, purpose);
}

/** Deletes a whole index: its folder, or its schema in PostgreSQL (benchmarks' throwaway indexes). */
export async function removeIndex(location: string): Promise<void> {
  if (isStoreUrl(location)) await dropIndex(parseLocation(location));
  else rmSync(location, { recursive: true, force: true });
}

/** After a writer's run: SQLite goes back to a self-contained file; others need nothing. */
export function settleStore(store: Store): void {
  if (store instanceof SqliteStore) store.settle();
}
