/**
 * Catalog images on many machines. The store keeps each image as the indexing machine saw
 * it: the catalog's root (manifest.catalog.root) and the path under it. Another machine that
 * mounts the same catalog elsewhere (a file share, an object-store mount) names its own
 * root, and reads every image at the same path under it. URLs, and paths outside the
 * indexed root, are kept as they are.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { LookalikeError } from '../errors.js';

const URL_SCHEME = /^https?:\/\//i;

/** Where this machine reads `image`, indexed under `indexedRoot`, when its own copy of the catalog is at `localRoot`. */
export function relocateImage(image: string, indexedRoot: string, localRoot: string | undefined): string {
  if (!localRoot || URL_SCHEME.test(image) || URL_SCHEME.test(indexedRoot)) return image;
  const under = path.relative(indexedRoot, image);
  if (!under || under.startsWith('..') || path.isAbsolute(under)) return image;
  return path.join(localRoot, under);
}

/** A machine's catalog root, checked at start: an existing folder, made absolute. */
export function checkCatalogRoot(dir: string | undefined): string | undefined {
  if (dir === undefined) return undefined;
  const absolute = path.resolve(dir);
  let info;
  try {
    info = statSync(absolute);
  } catch {
    throw new LookalikeError('CATALOG_NOT_FOUND', { path: absolute });
  }
  if (!info.isDirectory()) throw new LookalikeError('CATALOG_NOT_A_FOLDER', { path: absolute });
  return absolute;
}
