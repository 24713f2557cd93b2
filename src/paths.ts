/**
 * Where Lookalike keeps derived files. Nothing here is committed: model conversions go
 * to the user's cache folder, indexes to `.lookalike/` under the current directory.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { DEFAULT_INDEX_DIR, ENV } from './defaults.js';

/** The package root (the folder holding package.json), from src/ or dist/. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Derived model files (ONNX conversions, int8 models, calibrations, replicas' ANN files):
 * one per-user cache, shared by every index and every checkout, never inside the package
 * (an installed package may be read-only, and a cache there grew with every checkout).
 * LOOKALIKE_CACHE overrides it; else $XDG_CACHE_HOME/lookalike, else ~/.cache/lookalike
 * (macOS: ~/Library/Caches/lookalike; Windows: %LOCALAPPDATA%\lookalike\cache).
 * `lookalike cache` lists and prunes it (model/cache.ts).
 */
export function cacheDir(): string {
  const own = process.env[ENV.cache];
  if (own) return path.resolve(own);
  const xdg = process.env.XDG_CACHE_HOME;
  // The XDG spec ignores a relative path.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'lookalike');
  const home = userHome();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'lookalike');
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'lookalike', 'cache');
  return path.join(home, '.cache', 'lookalike');
}

/** The cache of versions before the per-user one (`.cache/` in the package), for `lookalike cache` to point at. */
export function legacyCacheDir(): string {
  return path.join(PACKAGE_ROOT, '.cache');
}

/** The home folder; a user without one (some containers) gets a folder of its own under the temporary folder. */
function userHome(): string {
  let home = '';
  try {
    home = os.homedir();
  } catch {
    // no passwd entry for this uid
  }
  return home && home !== '/' ? home : path.join(os.tmpdir(), `lookalike-${process.getuid?.() ?? 'user'}`);
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
 * Not under LOOKALIKE_CACHE: that names where models are kept, which may be shared.
 */
export function demoIndexDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(userHome(), '.cache');
  const { version } = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return path.join(base, 'lookalike', `demo-${version}`);
}
