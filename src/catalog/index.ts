/**
 * Reading a product catalog from disk. Two layouts: styles.csv + images/<id>.jpg (the
 * Kaggle "Fashion Product Images" layout), or any folder of photos. Whatever is wrong with
 * single rows or files comes back as `problems`; only an unusable catalog throws.
 */
import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { LookalikeError } from '../errors.js';
import { readImageFolder } from './image-folder.js';
import { readImageLinks, readStylesCatalog } from './styles-csv.js';
import { expandPhotos, listPhotoFiles, readPhotoList } from './photos.js';
import type { Catalog, CatalogProblem, CatalogProblemKind } from './types.js';

export { IMAGE_EXTENSIONS } from './image-folder.js';
export type { Catalog, CatalogItem, CatalogProblem, CatalogProblemKind } from './types.js';
export { PHOTO_KEYS } from './photos.js';

export async function readCatalog(dir: string): Promise<Catalog> {
  const root = path.resolve(dir);
  let isDir: boolean;
  try {
    isDir = (await fs.stat(root)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new LookalikeError('CATALOG_NOT_FOUND', { path: root }, { cause: err });
    throw err;
  }
  if (!isDir) throw new LookalikeError('CATALOG_NOT_A_FOLDER', { path: root });

  let entries: Dirent[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new LookalikeError('CATALOG_UNREADABLE', { path: root, reason: (err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message }, { cause: err });
  }
  const csv = findEntry(entries, 'styles.csv');
  if (csv !== undefined) {
    const images = findEntry(entries, 'images');
    const imagesDir = images !== undefined && (await isDirectory(path.join(root, images.name))) ? path.join(root, images.name) : root;
    // The larger Kaggle dataset lists image URLs apart, in images.csv (filename,link); a shop
    // lists its products' photos there (id,file,view: catalog/photos.ts).
    const linksCsv = findEntry(entries, 'images.csv');
    const photoList = linksCsv !== undefined ? await readPhotoList(path.join(root, linksCsv.name), root, imagesDir) : undefined;
    const links = linksCsv !== undefined && !photoList ? await readImageLinks(path.join(root, linksCsv.name)) : undefined;
    const files = await listPhotoFiles(imagesDir, root);
    return expandPhotos(await readStylesCatalog(root, path.join(root, csv.name), imagesDir, links, { files, list: photoList }));
  }

  const items = await readImageFolder(root);
  if (items.length === 0) throw new LookalikeError('CATALOG_EMPTY', { path: root });
  return { root, kind: 'image-folder', columns: ['folder'], items, problems: [] };
}

/** Exact name first; otherwise any casing, since catalogs arrive from Windows and macOS. */
function findEntry(entries: Dirent[], name: string): Dirent | undefined {
  return entries.find((e) => e.name === name) ?? entries.find((e) => e.name.toLowerCase() === name);
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

const KIND_ORDER: readonly CatalogProblemKind[] = ['malformed-row', 'empty-id', 'duplicate-id', 'missing-image', 'unlisted-image', 'url-with-credentials'];

const KIND_MEANING: Record<CatalogProblemKind, string> = {
  'malformed-row': 'rows that could not be parsed, skipped',
  'empty-id': 'rows without an id, skipped',
  'duplicate-id': 'ids listed more than once, first row kept',
  'missing-image': 'listed ids with no image file, left out',
  'url-with-credentials': 'image URLs with a user name or password, left out (never stored)',
  'unlisted-image': 'images with no row in the CSV, not indexed (or with a malformed one, indexed with empty metadata)',
};

const EXAMPLES_PER_KIND = 5;

export function summarizeProblems(problems: CatalogProblem[]): string {
  if (problems.length === 0) return 'no catalog problems';
  const lines = [`${problems.length} catalog problem${problems.length === 1 ? '' : 's'}:`];
  for (const kind of KIND_ORDER) {
    const ofKind = problems.filter((p) => p.kind === kind);
    if (ofKind.length === 0) continue;
    lines.push(`  ${ofKind.length} ${kind} (${KIND_MEANING[kind]})`);
    for (const p of ofKind.slice(0, EXAMPLES_PER_KIND)) {
      const where = [p.line !== undefined ? `line ${p.line}` : '', p.id !== undefined ? `id ${p.id}` : ''].filter(Boolean).join(', ');
      lines.push(`    ${where ? `${where}: ` : ''}${p.detail}`);
    }
    if (ofKind.length > EXAMPLES_PER_KIND) lines.push(`    ... and ${ofKind.length - EXAMPLES_PER_KIND} more`);
  }
  return lines.join('\n');
}
