/**
 * The int8 calibration of a new index, measured on its own catalog: CALIBRATION_IMAGES
 * items chosen by a hash of the id (always the same ones, spread over the catalog whatever
 * its order), decoded (or fetched) exactly as for indexing, at the index's input size.
 * In-process indexing and `index --queue` both call this, so a queued int8 index gets the
 * calibration an in-process one would. In process, the images prepared here are handed to
 * indexing (`prepared`), so each is fetched and decoded once.
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { LookalikeError } from '../errors.js';
import { calibrate, CALIBRATION_IMAGES } from '../model/calibrate.js';
import type { Calibration } from '../model/quantise.js';
import type { EmbeddingSettings } from '../model/registry.js';
import type { FetchOptions } from '../image/fetch.js';
import { prepareItem, type EmbedJob, type PreparedItem } from './embed-batch.js';

/** Calibration images fetched or decoded at once. */
const CALIBRATION_CONCURRENCY = 16;

export async function calibrateOnCatalog(jobs: readonly EmbedJob[], settings: EmbeddingSettings, options: { log?: (m: string) => void; fetch?: FetchOptions; prepared?: Map<string, PreparedItem> } = {}): Promise<Calibration> {
  const log = options.log ?? (() => {});
  const hash = (id: string) => createHash('sha256').update(`calibration:${id}`).digest('hex');
  const chosen = jobs.map((j) => ({ j, h: hash(j.id) })).sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0)).map((x) => x.j);
  const plane = 3 * settings.width * settings.height;
  const tensors: Float32Array[] = [];
  let tried = 0;
  let firstFailure: { id: string; reason: string } | undefined;
  // Unreadable images are skipped (the indexing run itself reports them). The chosen images
  // are prepared CALIBRATION_CONCURRENCY at a time, so slow hosts delay only their own.
  const limit = pLimit(CALIBRATION_CONCURRENCY);
  for (let i = 0; i < chosen.length && tensors.length < CALIBRATION_IMAGES;) {
    const chunk = chosen.slice(i, i + CALIBRATION_IMAGES - tensors.length);
    i += chunk.length;
    tried += chunk.length;
    const prepared = await Promise.all(chunk.map((job) => limit(() => prepareItem(job, settings, options.fetch))));
    // In the hash's order, whatever order they arrived in: the same catalog, the same calibration.
    for (const p of prepared) {
      // Kept for indexing, which then neither fetches nor decodes these again.
      options.prepared?.set(p.job.id, p);
      if ('image' in p && tensors.length < CALIBRATION_IMAGES) tensors.push(p.image.tensor);
      else if ('error' in p) firstFailure ??= { id: p.job.id, reason: p.error };
    }
  }
  // Not one photo to measure the int8 model on: every photo of the catalog was tried.
  if (!tensors.length) throw new LookalikeError('CATALOG_NO_READABLE_IMAGE', { tried, example: firstFailure ? `${firstFailure.id}: ${firstFailure.reason}` : 'none' });
  log(`calibrating int8 on ${tensors.length} catalog images`);
  const pixels = new Float32Array(tensors.length * plane);
  tensors.forEach((t, i) => pixels.set(t, i * plane));
  return calibrate(settings.backbone, pixels, tensors.length, settings.height, settings.width, log);
}
