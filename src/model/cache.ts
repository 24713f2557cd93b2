/**
 * What the model cache (paths.ts cacheDir) holds, and pruning it. Everything there is
 * derived and rebuilt on demand: the float32 ONNX conversion of a backbone (~15 s to
 * convert again), one int8 model per calibration, i.e. per arithmetic (quantised again from
 * an index's manifest in seconds), calibration ranges, and replicas' ANN files (rebuilt at
 * the next start). Indexes of the same arithmetic share one model; a new catalog's int8
 * index brings a new calibration, hence a new ~32 MB model, so the cache grows with the
 * catalogs indexed: `lookalike cache prune` removes what has not been used for a while.
 *
 * "Last used" is the later of a file's access and modification times: loading a model
 * reads it, which the file system records (under Linux's default relatime, at most once a
 * day; on a volume mounted noatime, the time it was written). Pruning something still in
 * use costs its rebuild, nothing else.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { cacheDir, legacyCacheDir } from '../paths.js';
import { checkPositiveInteger } from '../validate.js';

export type CacheKind = 'float32 model' | 'int8 model' | 'calibration' | 'replica ANN files' | 'unfinished write' | 'other';

export interface CacheEntry {
  /** Relative to the cache folder. */
  name: string;
  kind: CacheKind;
  bytes: number;
  lastUsed: Date;
}

export interface CacheListing {
  dir: string;
  entries: CacheEntry[];
  bytes: number;
  /** The in-package `.cache/` of earlier versions, when it exists and is not the cache in use. */
  legacy?: { dir: string; bytes: number };
}

/** A write left by a process that died (the `.PID.tmp` of an atomic write) is stale after this long. */
const UNFINISHED_STALE_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_PRUNE_DAYS = 30;

export async function listCache(dir = cacheDir()): Promise<CacheListing> {
  const entries: CacheEntry[] = [];
  for (const top of await names(dir)) {
    const full = path.join(dir, top);
    const info = await stat(full).catch(() => undefined);
    if (!info) continue;
    if (info.isDirectory() && ['models', 'calibrations', 'stores'].includes(top)) {
      for (const name of await names(full)) {
        const entry = await entryOf(dir, path.join(top, name));
        if (entry) entries.push(entry);
      }
    } else {
      const entry = await entryOf(dir, top);
      if (entry) entries.push(entry);
    }
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  const listing: CacheListing = { dir, entries, bytes: entries.reduce((s, e) => s + e.bytes, 0) };
  const legacy = legacyCacheDir();
  if (path.resolve(legacy) !== path.resolve(dir)) {
    const size = await usage(legacy).catch(() => undefined);
    if (size && size.bytes > 0) listing.legacy = { dir: legacy, bytes: size.bytes };
  }
  return listing;
}

export interface PruneOptions {
  /** Remove what has not been used for this many days (default 30). */
  olderThanDays?: number;
  /** Remove everything (each is rebuilt when next needed). */
  all?: boolean;
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  dir?: string;
  now?: Date;
}

export interface PruneReport { dir: string; removed: CacheEntry[]; removedBytes: number; kept: number; keptBytes: number; dryRun: boolean }

export async function pruneCache(options: PruneOptions = {}): Promise<PruneReport> {
  const days = checkPositiveInteger(options.olderThanDays, 'the age of a prunable cache entry in days (--older-than)', 0) ?? DEFAULT_PRUNE_DAYS;
  const listing = await listCache(options.dir ?? cacheDir());
  const now = (options.now ?? new Date()).getTime();
  const prunable = (e: CacheEntry) => options.all
    || now - e.lastUsed.getTime() > (e.kind === 'unfinished write' ? UNFINISHED_STALE_MS : days * DAY_MS);
  const removed = listing.entries.filter(prunable);
  if (!options.dryRun) {
    for (const e of removed) await rm(path.join(listing.dir, e.name), { recursive: true, force: true });
  }
  const removedBytes = removed.reduce((s, e) => s + e.bytes, 0);
  return { dir: listing.dir, removed, removedBytes, kept: listing.entries.length - removed.length, keptBytes: listing.bytes - removedBytes, dryRun: options.dryRun === true };
}

async function names(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

async function entryOf(root: string, name: string): Promise<CacheEntry | undefined> {
  const size = await usage(path.join(root, name)).catch(() => undefined);
  if (!size) return undefined;
  return { name, kind: kindOf(name), bytes: size.bytes, lastUsed: new Date(size.lastUsedMs) };
}

function kindOf(name: string): CacheKind {
  const base = path.basename(name);
  if (/\.\d+\.tmp$/.test(base)) return 'unfinished write';
  const top = name.split(path.sep)[0];
  if (top === 'models' && base.endsWith('.onnx')) return /-int8q\d+-/.test(base) ? 'int8 model' : 'float32 model';
  if (top === 'calibrations') return 'calibration';
  if (top === 'stores') return 'replica ANN files';
  return 'other';
}

/** Bytes under a path, and the latest access or change of anything in it. */
async function usage(file: string): Promise<{ bytes: number; lastUsedMs: number }> {
  const info = await stat(file);
  let bytes = info.isFile() ? info.size : 0;
  // A folder's own access time moves when it is listed (by this very listing): only its files' count.
  let lastUsedMs = info.isDirectory() ? info.mtimeMs : Math.max(info.atimeMs, info.mtimeMs);
  if (info.isDirectory()) {
    for (const name of await names(file)) {
      const inner = await usage(path.join(file, name)).catch(() => undefined);
      if (!inner) continue;
      bytes += inner.bytes;
      lastUsedMs = Math.max(lastUsedMs, inner.lastUsedMs);
    }
  }
  return { bytes, lastUsedMs };
}
