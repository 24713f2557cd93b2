/**
 * The int8 calibration of a new index, measured on its own catalog: CALIBRATION_IMAGES
 * items chosen by a hash of the id (always the same ones, spread over the catalog whatever
 * its order), decoded (or fetched) exactly as for indexing, at the index's input size.
 * In-process indexing and `index --queue` both call this, so a queued int8 index gets the
 * calibration an in-process one would. In process, the images prepared here are handed to
 * indexing (`prepared`), so each is fetched and decoded once.
 */
import { createHash } from 'node:crypto';
import { LookalikeError } from '../errors.js';
import { calibrate, CALIBRATION_IMAGES } from '../model/calibrate.js';
import type { Calibration } from '../model/quantise.js';
import type { EmbeddingSettings } from '../model/registry.js';
import type { FetchOptions } from '../image/fetch.js';
import { prepareItem, type EmbedJob, type PreparedItem } from './embed-batch.js';

export async function calibrateOnCatalog(jobs: readonly EmbedJob[], settings: EmbeddingSettings, options: { log?: (m: string) => void; fetch?: FetchOptions; prepared?: Map<string, PreparedItem> } = {}): Promise<Calibration> {
  const log = options.log ?? (() => {});
  const hash = (id: string) => createHash('sha256').update(`calibration:${id}`).digest('hex');
  const chosen = jobs.map((j) => ({ j, h: hash(j.id) })).sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0)).map((x) => x.j);
  const plane = 3 * settings.width * settings.height;
  const tensors: Float32Array[] = [];
  // Unreadable images are skipped (the indexing run itself reports them).
  for (let i = 0; i < chosen.length && tensors.length < CALIBRATION_IMAGES; i += 16) {
    // In the hash's order, whatever order they arrive in: the same catalog, the same calibration.
    const batch = await Promise.all(chosen.slice(i, i + 16).map((job) => prepareItem(job, settings, options.fetch)));
    for (const p of batch) {
      // Kept for indexing, which then neither fetches nor decodes these again.
      options.prepared?.set(p.job.id, p);
      if ('image' in p && tensors.length < CALIBRATION_IMAGES) tensors.push(p.image.tensor);
    }
  }
  if (!tensors.length) throw new LookalikeError('CATALOG_EMPTY', { path: 'the catalog (no readable image to calibrate int8 on)' });
  log(`calibrating int8 on ${tensors.length} catalog images`);
  const pixels = new Float32Array(tensors.length * plane);
  tensors.forEach((t, i) => pixels.set(t, i * plane));
  return calibrate(settings.backbone, pixels, tensors.length, settings.height, settings.width, log);
}
