/**
 * Several photos per product. A styles.csv catalog may give a product more photos than
 * images/<id>.jpg, in any of three ways (they add up, in this order):
 * - `images/<id>_<n>.jpg` beside it (n a number; sorted by n), unless `<id>_<n>` is itself
 *   a listed product;
 * - a folder `images/<id>/` of photos (sorted by name);
 * - `images.csv` beside styles.csv with the columns id and file (or image, url, path,
 *   photo), and optionally view (or role): one row per photo, in file order. A file is
 *   relative to the catalog folder (or to images/), never outside it; a URL is http(s).
 *
 * Every photo becomes a row of the index of its own (its own vectors, its own incremental
 * indexing, queue job, PostgreSQL row and ANN node). The first photo's row keeps the
 * product's id, so a catalog without extra photos indexes exactly as before; the others are
 * `<id>#<file or URL>` (stable: adding or removing one photo leaves the others' rows as they
 * are) and carry the product's id in their metadata (PHOTO_KEYS). Searches fold photo rows
 * back into products (search/products.ts).
 */
import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { compareIds, imageExtension } from './image-folder.js';
import { parseCsvRows, readCsvBytes } from './styles-csv.js';
import type { Catalog, CatalogItem, CatalogProblem, PhotoList, PhotoSource } from './types.js';

export type { PhotoList, PhotoSource } from './types.js';

/**
 * Metadata keys a photo row carries (never a catalog column: columns come from the CSV
 * header, and these are left out of results, facets and listings). The product's first
 * photo has none of them unless the catalog names its view.
 */
export const PHOTO_KEYS = Object.freeze({
  /** On every photo but the first: the product's id. */
  product: '@product',
  /** On every photo but the first: its place among the product's photos (0 is the first). */
  index: '@photo',
  /** The photo's view or role from images.csv (front, back, detail...), when given. */
  view: '@view',
});

/** Separates a product's id from the name of one of its further photos in a photo row's id. */
export const PHOTO_ID_SEPARATOR = '#';

const FILE_COLUMNS = ['file', 'image', 'url', 'path', 'photo', 'filename'];
const VIEW_COLUMNS = ['view', 'role'];

/**
 * images.csv as a list of photos (id, file or URL, optional view), or undefined when it is
 * the Kaggle `filename,link` list of one URL per product (catalog/styles-csv.ts readImageLinks).
 */
export async function readPhotoList(csvPath: string, root: string, imagesDir: string): Promise<PhotoList | undefined> {
  const { rows, broken } = parseCsvRows(await readCsvBytes(csvPath));
  const header = (rows[0]?.fields ?? []).map((h) => h.trim().toLowerCase());
  const idAt = header.indexOf('id');
  if (idAt < 0) return undefined;
  const fileAt = header.findIndex((h) => FILE_COLUMNS.includes(h));
  const viewAt = header.findIndex((h) => VIEW_COLUMNS.includes(h));
  const problems: CatalogProblem[] = broken.map((b) => ({ kind: 'malformed-row', line: b.line, file: csvPath, detail: `${b.reason}; photo skipped` }));
  const byId = new Map<string, PhotoSource[]>();
  if (fileAt < 0) {
    problems.push({ kind: 'malformed-row', line: rows[0].line, file: csvPath, detail: `images.csv needs a column naming each photo (${FILE_COLUMNS.join(', ')}); no photos read from it` });
    return { byId, problems };
  }
  for (const { fields, line } of rows.slice(1)) {
    const id = fields[idAt]?.trim() ?? '';
    const cell = fields[fileAt]?.trim() ?? '';
    if (id === '' || cell === '') {
      problems.push({ kind: id === '' ? 'empty-id' : 'missing-image', ...(id && { id }), line, file: csvPath, detail: 'a photo row needs an id and a file or URL; row skipped' });
      continue;
    }
    const view = viewAt >= 0 ? fields[viewAt]?.trim() || undefined : undefined;
    const source = await photoSource(cell, root, imagesDir);
    if (typeof source === 'string') {
      problems.push({ kind: 'missing-image', id, line, file: csvPath, detail: `${source}; photo left out` });
      continue;
    }
    const list = byId.get(id) ?? [];
    if (!list.some((p) => p.imagePath === source.imagePath)) list.push({ ...source, ...(view && { view }) });
    byId.set(id, list);
  }
  return { byId, problems };
}

/** A photo cell: an http(s) URL, or an existing image file inside the catalog folder. A string says why not. */
async function photoSource(cell: string, root: string, imagesDir: string): Promise<Omit<PhotoSource, 'view'> | string> {
  if (/^https?:\/\//i.test(cell)) {
    try {
      const url = new URL(cell);
      if (url.username || url.password) return `the URL of ${cell.replace(/\/\/[^/]*@/, '//***@')} carries a user name or password`;
    } catch {
      return `${cell} is not a URL`;
    }
    return { imagePath: cell, key: cell };
  }
  if (imageExtension(cell) === undefined) return `${cell} is not an image file name`;
  for (const base of [root, imagesDir]) {
    const file = path.resolve(base, cell);
    const rel = path.relative(root, file);
    if (rel.startsWith('..') || path.isAbsolute(rel)) return `${cell} is outside the catalog folder`;
    try {
      if ((await fs.stat(file)).isFile()) return { imagePath: file, key: rel.split(path.sep).join('/') };
    } catch { /* tried next under images/ */ }
  }
  return `no file ${cell} in the catalog folder or its images folder`;
}

const NUMBERED = /^(.*)_(\d+)$/;

/**
 * Further photos on disk in `imagesDir`, by the id they would belong to: `<id>_<n>.<ext>`
 * files (by n), then the image files of a folder `<id>/` (by name).
 */
export async function listPhotoFiles(imagesDir: string, root: string): Promise<Map<string, PhotoSource[]>> {
  const byId = new Map<string, Array<PhotoSource & { order: number }>>();
  const add = (id: string, photo: PhotoSource & { order: number }) => {
    const list = byId.get(id) ?? [];
    list.push(photo);
    byId.set(id, list);
  };
  const keyOf = (file: string) => path.relative(root, file).split(path.sep).join('/');
  let entries: Dirent[];
  try {
    entries = await fs.readdir(imagesDir, { withFileTypes: true });
  } catch {
    return new Map();
  }
  const folders: Dirent[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) { folders.push(entry); continue; }
    const ext = imageExtension(entry.name);
    if (ext === undefined || !entry.isFile()) continue;
    const ownId = entry.name.slice(0, entry.name.length - ext.length);
    const m = NUMBERED.exec(ownId);
    if (!m || m[1] === '') continue;
    const file = path.join(imagesDir, entry.name);
    add(m[1], { imagePath: file, key: keyOf(file), ownId, order: Number(m[2]) });
  }
  for (const folder of folders.sort((a, b) => compareIds(a.name, b.name))) {
    const dir = path.join(imagesDir, folder.name);
    let files: Dirent[];
    try {
      files = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    const photos = files.filter((f) => !f.name.startsWith('.') && f.isFile() && imageExtension(f.name) !== undefined).map((f) => f.name).sort(compareIds);
    photos.forEach((name, i) => { const file = path.join(dir, name); add(folder.name, { imagePath: file, key: keyOf(file), order: Number.MAX_SAFE_INTEGER / 2 + i }); });
  }
  const out = new Map<string, PhotoSource[]>();
  for (const [id, list] of byId) {
    out.set(id, list.sort((a, b) => a.order - b.order || compareIds(a.key, b.key)).map(({ order: _order, ...p }) => p));
  }
  return out;
}

/**
 * The catalog's items as index rows, one per photo: an item with further photos (its
 * `photos`) becomes its first photo's row (the product's id) followed by one row per
 * further photo. A catalog without them comes back as it is.
 */
export function expandPhotos(catalog: Catalog): Catalog {
  if (!catalog.items.some((i) => i.photos?.length)) return catalog;
  const items: CatalogItem[] = [];
  const ids = new Set(catalog.items.map((i) => i.id));
  const problems = [...catalog.problems];
  let photos = 0;
  for (const { photos: listed, ...item } of catalog.items) {
    // images.csv may list the product's own images/<id>.jpg, to name its view.
    const view = listed?.find((p) => p.imagePath === item.imagePath)?.view;
    const extra = listed?.filter((p) => p.imagePath !== item.imagePath);
    items.push(view ? { ...item, metadata: { ...item.metadata, [PHOTO_KEYS.view]: view } } : item);
    photos++;
    (extra ?? []).forEach((p, i) => {
      const id = `${item.id}${PHOTO_ID_SEPARATOR}${p.key}`;
      if (ids.has(id)) {
        problems.push({ kind: 'duplicate-id', id, file: p.imagePath, detail: `a photo of ${item.id} would be indexed as ${id}, which is a product of its own; photo left out` });
        return;
      }
      ids.add(id);
      photos++;
      const metadata = { ...item.metadata, [PHOTO_KEYS.product]: item.id, [PHOTO_KEYS.index]: String(i + 1), ...(p.view && { [PHOTO_KEYS.view]: p.view }) };
      items.push({ id, imagePath: p.imagePath, metadata });
    });
  }
  return { ...catalog, items, problems, products: catalog.items.length, photos };
}
