/**
 * The int8 calibration of a new index, measured on its own catalog: CALIBRATION_IMAGES
 * items chosen by a hash of the id (always the same ones, spread over the catalog whatever
 * its order), decoded (or fetched) exactly as for indexing, at the index's input size.
 * In-process indexing and `index --queue` both call this, so a queued int8 index gets the
 * calibration an in-process one would.
 */
import { createHash } from 'node:crypto';
import { LookalikeError } from '../errors.js';
import { calibrate, CALIBRATION_IMAGES } from '../model/calibrate.js';
import type { Calibration } from '../model/quantise.js';
import type { EmbeddingSettings } from '../model/registry.js';
import type { FetchOptions } from '../image/fetch.js';
import { prepareBatch, type EmbedJob } from './embed-batch.js';

export async function calibrateOnCatalog(jobs: readonly EmbedJob[], settings: EmbeddingSettings, options: { log?: (m: string) => void; fetch?: FetchOptions } = {}): Promise<Calibration> {
  const log = options.log ?? (() => {});
  const hash = (id: string) => createHash('sha256').update(`calibration:${id}`).digest('hex');
  const chosen = jobs.map((j) => ({ j, h: hash(j.id) })).sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0)).map((x) => x.j);
  const plane = 3 * settings.width * settings.height;
  const tensors: Float32Array[] = [];
  let tried = 0;
  let firstFailure: { id: string; reason: string } | undefined;
  // Unreadable images are skipped (the indexing run itself reports them).
  for (let i = 0; i < chosen.length && tensors.length < CALIBRATION_IMAGES; i += 16) {
    const batch = await prepareBatch(chosen.slice(i, i + 16), settings, options.fetch);
    tried += Math.min(16, chosen.length - i);
    firstFailure ??= batch.failures[0];
    for (const p of batch.ok) if (tensors.length < CALIBRATION_IMAGES) tensors.push(p.image.tensor);
  }
  // Not one photo to measure the int8 model on: every photo of the catalog was tried.
  if (!tensors.length) throw new LookalikeError('CATALOG_NO_READABLE_IMAGE', { tried, example: firstFailure ? `${firstFailure.id}: ${firstFailure.reason}` : 'none' });
  log(`calibrating int8 on ${tensors.length} catalog images`);
  const pixels = new Float32Array(tensors.length * plane);
  tensors.forEach((t, i) => pixels.set(t, i * plane));
  return calibrate(settings.backbone, pixels, tensors.length, settings.height, settings.width, log);
}
