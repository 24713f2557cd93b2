/**
 * Reading a catalog item's photo to hand it out (GET /images/:id): the path comes from the
 * index, never from a caller. The catalog can change after indexing, so the file is checked
 * when read: it must still resolve (symlinks followed) inside the catalog folder, and its
 * bytes must be the image type its name states. A photo swapped for a link to /etc/passwd
 * is refused, not served.
 */
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { LookalikeError } from '../errors.js';
import { sniffFormat } from './sniff.js';

/** Larger files are not product photos. */
const MAX_PHOTO_BYTES = 50 * 1024 * 1024;

const TYPE_OF_EXTENSION: Record<string, string> = { '.jpg': 'jpeg', '.jpeg': 'jpeg', '.png': 'png', '.webp': 'webp' };

/** A catalog photo's bytes and the format sniffed from them (jpeg, png or webp). */
export interface CatalogPhoto { bytes: Buffer; format: string }

/**
 * The photo of item `id` at `file`, when it is still a photo inside `catalogFolder` (that
 * folder's real path on this machine; undefined when it cannot be found): else
 * CATALOG_IMAGE_MISSING or CATALOG_IMAGE_REFUSED.
 */
export async function readCatalogPhoto(id: string, file: string, catalogFolder: string | undefined): Promise<CatalogPhoto> {
  const refused = (why: string) => new LookalikeError('CATALOG_IMAGE_REFUSED', { id, why });
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
  }
  if (!catalogFolder || (real !== catalogFolder && !real.startsWith(catalogFolder + path.sep))) throw refused('the file now points outside the catalog folder');
  // Without blocking: a named pipe put in the catalog would hold the request for ever.
  const handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
  let bytes: Buffer;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
    if (info.size > MAX_PHOTO_BYTES) throw refused(`the file is over ${MAX_PHOTO_BYTES / 1024 / 1024} MB, too large for a product photo`);
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  const stated = TYPE_OF_EXTENSION[path.extname(real).toLowerCase()];
  const sniffed = sniffFormat(bytes);
  if (sniffed !== stated) throw refused(`the file is no longer a ${(stated ?? 'JPEG, PNG or WebP').toUpperCase()} image`);
  return { bytes, format: sniffed };
}
