/**
 * The data suite's shared index: a fixed subset of the dev catalog (the first 1,000 ids
 * of styles.csv that have an image) embedded with the real model, built once per machine
 * into the temp folder and reused by every data test file.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { devCatalogDir } from '../../src/paths.js';
import { buildIndex } from '../../src/indexing/build.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { QUANTISER_VERSION } from '../../src/model/quantise.js';
import type { Precision } from '../../src/model/registry.js';

export const DEV_CATALOG = devCatalogDir();
export const HAS_DEV_CATALOG = existsSync(path.join(DEV_CATALOG, 'styles.csv'));
/** 1,000; LOOKALIKE_DEV_SUBSET shrinks it for runs under a CPU emulator (issue 21's AVX2 check). */
export const DEV_INDEX_SIZE = Number(process.env.LOOKALIKE_DEV_SUBSET ?? 1000);

/** The ids of the fixed subset, in catalog order. */
export function devSubsetIds(size = DEV_INDEX_SIZE): string[] {
  const images = new Set(readdirSync(path.join(DEV_CATALOG, 'images')).map((f) => f.replace(/\.jpg$/i, '')));
  const ids: string[] = [];
  for (const line of readFileSync(path.join(DEV_CATALOG, 'styles.csv'), 'utf8').split(/\r?\n/).slice(1)) {
    const id = line.slice(0, line.indexOf(','));
    if (id && images.has(id)) ids.push(id);
    if (ids.length === size) break;
  }
  return ids;
}

const building = new Map<string, Promise<string>>();

/**
 * The fixed subset indexed in the default arithmetic, or in float32 (the quality gate's
 * reference). The folder names the quantiser: an index left in the temp folder by an
 * earlier version (another arithmetic) is never taken for this one's.
 */
export function devIndex(precision: Precision | 'default' = 'default'): Promise<string> {
  const key = precision === 'default' ? `q${QUANTISER_VERSION}` : precision;
  let promise = building.get(key);
  if (promise) return promise;
  promise = (async () => {
    const dir = precision === 'default' && process.env.LOOKALIKE_DEV_INDEX
      ? process.env.LOOKALIKE_DEV_INDEX
      : path.join(os.tmpdir(), `lookalike-dev-index-${DEV_INDEX_SIZE}-${key}`);
    if (existsSync(path.join(dir, 'index.sqlite'))) {
      const store = SqliteStore.open(dir, { readonly: true });
      const embedded = store.count().embedded;
      store.close();
      if (embedded >= DEV_INDEX_SIZE) return dir;
    }
    const ids = new Set(devSubsetIds());
    // Resumable: if another test file (or an earlier run) started it, this completes it.
    await buildIndex({ catalogDir: DEV_CATALOG, indexDir: dir, select: (id) => ids.has(id), settings: precision === 'default' ? {} : { precision } });
    return dir;
  })();
  building.set(key, promise);
  return promise;
}
