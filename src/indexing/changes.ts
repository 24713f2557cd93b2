/**
 * What a rerun must embed: items without vectors (new, or failed before), and items whose
 * image changed. Shared by in-process indexing (build.ts) and queued indexing
 * (queue/enqueue.ts), so both re-embed exactly the same items.
 *
 * An image changed when its bytes did. Reading every image on every rerun would cost as much
 * as a small index, so a cheap stamp is checked first and the bytes only when it moved:
 * - a file: its size and modification time (stat); when they differ, or the path does, the
 *   file is hashed and compared with the hash stored with its vectors. A touched or copied
 *   file with the same bytes is not embedded again (its new stamp is recorded instead).
 * - a URL: another URL is a new image; the same URL is asked again with a HEAD request, and
 *   an ETag (or Last-Modified) other than the one the worker saw means new bytes.
 * Indexes written before hashes were kept have none: their images count as unchanged unless
 * the path or URL changed.
 */
import { stat } from 'node:fs/promises';
import type { CatalogItem } from '../catalog/types.js';
import { isImageUrl, probeImageUrl, type FetchOptions } from '../image/fetch.js';
import pLimit from 'p-limit';
import type { ImageSource, Store } from '../store/types.js';
import { fileStamp, hashFile } from './image-source.js';

/** Parallel stats and hashes of local files, and HEAD requests in flight. */
const FILE_CHECKS = 32;
const URL_CHECKS = 16;

export interface ChangeReport {
  todo: CatalogItem[];
  /** Items without vectors (new, or failed before). */
  fresh: number;
  /** Items whose image bytes (or image URL) changed. */
  changed: number;
  /** Files found touched or moved with the same bytes (stamp refreshed, not re-embedded). */
  restamped: number;
  /** Image URLs whose server could not be asked (kept as they are; the next rerun asks again). */
  unchecked: number;
}

export async function imagesToEmbed(store: Store, items: readonly CatalogItem[], options: { fetch?: FetchOptions; log?: (m: string) => void } = {}): Promise<ChangeReport> {
  const embedded = store.embeddedIds();
  const stored = new Map(store.listItems().map((i) => [i.id, i.image]));
  const sources = embedded.size ? await store.imageSources() : new Map<string, ImageSource>();
  const report: ChangeReport = { todo: [], fresh: 0, changed: 0, restamped: 0, unchecked: 0 };
  const restamp: Array<{ id: string; stamp: string }> = [];
  const limit = pLimit(items.some((i) => isImageUrl(i.imagePath)) ? URL_CHECKS : FILE_CHECKS);
  const verdict = async (item: CatalogItem): Promise<'fresh' | 'changed' | 'same' | 'unchecked'> => {
    if (!embedded.has(item.id)) return 'fresh';
    const before = sources.get(item.id);
    const moved = stored.get(item.id) !== item.imagePath;
    if (isImageUrl(item.imagePath)) {
      if (moved) return 'changed';
      if (!before?.stamp) return 'same';
      try {
        const now = await probeImageUrl(item.imagePath, options.fetch);
        return now && now !== before.stamp ? 'changed' : 'same';
      } catch {
        return 'unchecked';
      }
    }
    if (!before) return moved ? 'changed' : 'same';
    try {
      // One stat per file; the bytes are read only when the path or the stamp moved.
      const stamp = fileStamp(await stat(item.imagePath));
      if (!moved && stamp === before.stamp) return 'same';
      if (await hashFile(item.imagePath) !== before.hash) return 'changed';
      restamp.push({ id: item.id, stamp });
      return 'same';
    } catch {
      // Gone or unreadable now: embedding it records why.
      return 'changed';
    }
  };
  const verdicts = await Promise.all(items.map((item) => limit(() => verdict(item))));
  items.forEach((item, i) => {
    const v = verdicts[i];
    if (v === 'fresh' || v === 'changed') report.todo.push(item);
    if (v === 'fresh') report.fresh++;
    else if (v === 'changed') report.changed++;
    else if (v === 'unchecked') report.unchecked++;
  });
  report.restamped = restamp.length;
  await store.updateStamps(restamp);
  if (report.changed) options.log?.(`${report.changed} images changed since they were embedded`);
  if (report.unchecked) options.log?.(`${report.unchecked} image URLs could not be checked for changes (kept; the next run asks again)`);
  return report;
}
