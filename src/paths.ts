/**
 * Where Lookalike keeps derived files. Nothing here is committed: model conversions go
 * to a git-ignored cache, indexes to `.lookalike/` under the current directory.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_CACHE_DIR, DEFAULT_INDEX_DIR, ENV } from './defaults.js';

/** The package root (the folder holding package.json), from src/ or dist/. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Derived model files (ONNX conversions). Override with LOOKALIKE_CACHE. */
export function cacheDir(): string {
  return process.env[ENV.cache] ?? path.join(PACKAGE_ROOT, DEFAULT_CACHE_DIR);
}

/**
 * Where a replica of a shared store keeps its rebuildable ANN files: under the model cache,
 * one folder per store location (hashed: the location may hold a password). Losing it
 * costs one rebuild at the next start, nothing else.
 */
export function storeCacheDir(location: string): string {
  return path.join(cacheDir(), 'stores', createHash('sha256').update(location).digest('hex').slice(0, 16));
}

/** Default index folder: `.lookalike/` under the current directory. */
export function defaultIndexDir(): string {
  return path.resolve(process.env[ENV.index] ?? DEFAULT_INDEX_DIR);
}

/** The dev catalog beside the project (tests, benchmarks). Override with LOOKALIKE_DATASET. */
export function devCatalogDir(): string {
  return process.env[ENV.dataset] ?? path.resolve(PACKAGE_ROOT, '..', 'shared', 'datasets', 'fashion-small');
}

/** The demo catalog shipped in the package (`lookalike demo`): 300 photos of the dev catalog's kind. */
export function demoCatalogDir(): string {
  return path.join(PACKAGE_ROOT, 'demo', 'catalog');
}

/**
 * Where `lookalike demo` keeps its index: the user's cache ($XDG_CACHE_HOME, else ~/.cache),
 * never the package folder, which may be read-only (a global install) or a git checkout.
 * One folder per package version, so an upgrade that changes the model starts afresh.
 */
export function demoIndexDir(): string {
  const home = os.homedir();
  const base = process.env.XDG_CACHE_HOME || (home ? path.join(home, '.cache') : os.tmpdir());
  const { version } = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return path.join(base, 'lookalike', `demo-${version}`);
}
