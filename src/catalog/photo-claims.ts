/**
 * Which further photos on disk and in images.csv (catalog/photos.ts) belong to which listed
 * product; apart from photos.ts so that the styles.csv reader can ask without an import cycle.
 */
import type { PhotoList, PhotoSource } from './types.js';

/**
 * The further photos of the listed products: files on disk, then images.csv's, each path
 * once. A numbered file `<id>_<n>.jpg` whose own name is a listed product stays that
 * product's image. `claimed` holds the ids of the numbered files taken as photos (not
 * reported as images without a row).
 */
export function claimPhotos(files: Map<string, PhotoSource[]>, list: PhotoList | undefined, listed: ReadonlySet<string>): { byId: Map<string, PhotoSource[]>; claimed: Set<string> } {
  const byId = new Map<string, PhotoSource[]>();
  const claimed = new Set<string>();
  for (const id of new Set([...files.keys(), ...(list?.byId.keys() ?? [])])) {
    if (!listed.has(id)) continue;
    const photos: PhotoSource[] = [];
    for (const p of files.get(id) ?? []) {
      if (p.ownId !== undefined && listed.has(p.ownId)) continue;
      if (p.ownId !== undefined) claimed.add(p.ownId);
      photos.push(p);
    }
    for (const p of list?.byId.get(id) ?? []) if (!photos.some((q) => q.imagePath === p.imagePath)) photos.push(p);
    if (photos.length) byId.set(id, photos);
  }
  return { byId, claimed };
}
