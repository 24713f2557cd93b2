/**
 * Image files on disk: which names count as images, one flat listing for the styles.csv
 * layout, and the recursive walk for a plain folder of photos.
 */
import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import type { CatalogItem } from './types.js';

/** In order of preference: when `123.jpg` and `123.png` both exist, `123.jpg` wins. */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.jpg', '.jpeg', '.png', '.webp']);

/** The lower-cased extension when `name` is an image file name, otherwise undefined. */
export function imageExtension(name: string): string | undefined {
  const ext = path.extname(name).toLowerCase();
  return IMAGE_EXTENSIONS.includes(ext) ? ext : undefined;
}

/**
 * Dot-files are skipped as well as dot-folders: macOS copies leave `._123.jpg` resource
 * forks next to every photo, which carry an image name but no image.
 */
function isHidden(name: string): boolean {
  return name.startsWith('.');
}

/** A symlink counts as what it points to; a dangling one counts as nothing. */
async function entryKind(dir: string, entry: Dirent): Promise<'file' | 'dir' | 'other'> {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'dir';
  if (!entry.isSymbolicLink()) return 'other';
  try {
    const st = await fs.stat(path.join(dir, entry.name));
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'other';
  }
}

/**
 * One listing of `dir` into id -> file name: a stat per listed id would cost 31k system
 * calls on the Kaggle catalog.
 */
export async function listImagesById(dir: string): Promise<Map<string, string>> {
  const byId = new Map<string, string>();
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (isHidden(entry.name)) continue;
    const ext = imageExtension(entry.name);
    if (ext === undefined) continue;
    // Awaiting only for symlinks: one await per entry costs more than the readdir itself.
    if (!entry.isFile() && (await entryKind(dir, entry)) !== 'file') continue;
    const id = entry.name.slice(0, entry.name.length - ext.length);
    const seen = byId.get(id);
    // readdir order is the file system's; ranking keeps the choice the same everywhere.
    if (seen === undefined || preferImage(entry.name, seen)) byId.set(id, entry.name);
  }
  return byId;
}

/** Whether image file `a` beats `b` for the same id: extension order, then name. */
function preferImage(a: string, b: string): boolean {
  const rankA = IMAGE_EXTENSIONS.indexOf(imageExtension(a)!);
  const rankB = IMAGE_EXTENSIONS.indexOf(imageExtension(b)!);
  return rankA !== rankB ? rankA < rankB : a < b;
}

/**
 * Every image under `root`, id = path relative to root with '/' separators, sorted by id.
 * Symlinked folders are not followed, so a link back up the tree cannot loop forever.
 */
export async function readImageFolder(root: string): Promise<CatalogItem[]> {
  const items: CatalogItem[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      // A subfolder that cannot be listed (permissions; parts of /proc) holds no photos we
      // could read anyway; the catalog folder itself must be readable (readCatalog).
      if (rel === '') throw err;
      return;
    }
    for (const entry of entries) {
      if (isHidden(entry.name)) continue;
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') await walk(path.join(dir, entry.name), childRel);
        continue;
      }
      if (imageExtension(entry.name) === undefined) continue;
      if (!entry.isFile() && (await entryKind(dir, entry)) !== 'file') continue;
      items.push({ id: childRel, imagePath: path.join(dir, entry.name), metadata: { folder: rel } });
    }
  };
  await walk(root, '');
  return items.sort((a, b) => compareIds(a.id, b.id));
}

/** Code-unit order, not locale order, so ids sort the same on every machine. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
