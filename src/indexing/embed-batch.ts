/**
 * Embedding one batch of items: decode (or fetch, for http(s) images) and resize every
 * image, run the backbone once over the batch, and return the vectors and the per-item
 * failures, ready for one `store.putVectors`. In-process indexing (build.ts) and the queue's
 * workers (queue/worker.ts) both call this, so both give byte-identical vectors.
 */
import type { Embedder } from '../model/embedder.js';
import type { EmbeddingSettings } from '../model/registry.js';
import { prepareImage, type PreparedImage } from '../image/prepare.js';
import { prepareOptionsFor } from '../image/options.js';
import { fetchImage, isImageUrl, type FetchOptions } from '../image/fetch.js';
import type { ImageSource, ItemFailure, ItemVectors } from '../store/types.js';
import { readImageFile, sha256 } from './image-source.js';

/** One item to embed: its id and its image (an absolute path, or an http(s) URL). */
export interface EmbedJob { id: string; image: string }

export interface PreparedBatch {
  ok: Array<{ job: EmbedJob; image: PreparedImage; source?: ImageSource }>;
  failures: ItemFailure[];
  /** ok.length x 3 x height x width, the network's input. */
  pixels: Float32Array;
}

/** One item decoded (and resized), or the reason it could not be. */
export type PreparedItem = { job: EmbedJob; image: PreparedImage; source?: ImageSource } | { job: EmbedJob; error: string };

/** Decodes one item (fetching it first when it is a URL); never throws: a failure is an outcome. */
export async function prepareItem(job: EmbedJob, settings: EmbeddingSettings, fetchOptions?: FetchOptions): Promise<PreparedItem> {
  const prep = prepareOptionsFor(settings);
  try {
    // The bytes are read once: the hash and the vectors come from the same ones.
    if (isImageUrl(job.image)) {
      const fetched = await fetchImage(job.image, fetchOptions);
      const image = await prepareImage(fetched.bytes, { ...prep, label: job.image });
      return { job, image, source: { hash: sha256(fetched.bytes), ...(fetched.stamp && { stamp: fetched.stamp }) } };
    }
    const file = await readImageFile(job.image);
    // Unreadable: decoding from the path throws the error a person can act on (not found, a folder...).
    const image = await prepareImage(file?.bytes ?? job.image, { ...prep, label: job.image });
    return { job, image, source: file && { hash: file.hash, stamp: file.stamp } };
  } catch (err) {
    return { job, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Prepared items as one batch: the network's input and the failures, ready for `store.putVectors`. */
export function batchOf(prepared: readonly PreparedItem[], settings: EmbeddingSettings): PreparedBatch {
  const plane = 3 * settings.width * settings.height;
  const ok = prepared.filter((p): p is { job: EmbedJob; image: PreparedImage; source?: ImageSource } => 'image' in p);
  const failures: ItemFailure[] = prepared.filter((p): p is { job: EmbedJob; error: string } => 'error' in p).map((p) => ({ id: p.job.id, reason: p.error }));
  const pixels = new Float32Array(ok.length * plane);
  ok.forEach((p, i) => pixels.set(p.image.tensor, i * plane));
  return { ok, failures, pixels };
}

/** Decodes a batch; an image that cannot be read (or fetched) becomes a failure, never an exception. */
export async function prepareBatch(batch: readonly EmbedJob[], settings: EmbeddingSettings, fetchOptions?: FetchOptions): Promise<PreparedBatch> {
  return batchOf(await Promise.all(batch.map((job) => prepareItem(job, settings, fetchOptions))), settings);
}

/** Runs the backbone over a prepared batch: one ItemVectors per readable image. */
export async function embedPrepared(embedder: Embedder, settings: EmbeddingSettings, batch: PreparedBatch): Promise<ItemVectors[]> {
  if (!batch.ok.length) return [];
  const dim = embedder.dimension;
  const out = await embedder.run(batch.pixels, batch.ok.length, settings.height, settings.width);
  return batch.ok.map((p, i) => ({
    id: p.job.id,
    max: out.max.slice(i * dim, (i + 1) * dim),
    avg: out.avg.slice(i * dim, (i + 1) * dim),
    colour: p.image.colour,
    source: p.source,
  }));
}
