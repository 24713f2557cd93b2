/**
 * What the routes share: the opened index, the inference queue, the limits, and how the
 * library's objects are shown over HTTP (ids and image URLs, never file paths).
 */
import type { Lookalike } from '../lookalike.js';
import type { StoredItem } from '../store/types.js';
import type { SearchHit } from '../search/engine.js';
import { productMetadata, type MatchedPhoto } from '../search/products.js';
import { parseFilters, type Filters } from '../search/filters.js';
import type { InferenceQueue } from './queue.js';

export interface ServerLimits {
  /** Largest upload, bytes. */
  maxUploadBytes: number;
  /** Largest decoded image, pixels (width x height). */
  maxPixels: number;
}

export interface ModelState {
  state: 'loading' | 'ready' | 'failed';
  message?: string;
}

export interface ServerContext {
  lookalike: Lookalike;
  queue: InferenceQueue;
  limits: ServerLimits;
  /** Catalog fields offered as filters (facets), in display order. */
  facetFields: string[];
  model: ModelState;
  startedAt: number;
  /** Past this many seconds behind the database, a replica is not ready (readiness.ts). */
  maxStalenessSeconds: number;
  /** Set on SIGTERM: readiness fails while requests in flight finish. */
  draining: boolean;
  /** Whether this server should get traffic now, and why not (readiness.ts). */
  readiness(): Readiness;
}

export interface Readiness {
  ready: boolean;
  /** Why not, in words (empty when ready). */
  reasons: string[];
  model: ModelState;
  draining: boolean;
  /** A replica of a shared store: how far behind the database it is. */
  store?: { generation: number; storeGeneration: number; lagSeconds: number; maxStalenessSeconds: number; confirmedAt: string };
}

export function imageUrl(id: string): string {
  return `/images/${encodeURIComponent(id)}`;
}

export function presentItem(item: StoredItem) {
  return { id: item.id, metadata: productMetadata(item.metadata), imageUrl: imageUrl(item.id) };
}

export function presentHit(hit: SearchHit) {
  return {
    id: hit.id, rank: hit.rank, score: hit.score, metadata: hit.metadata, imageUrl: imageUrl(hit.id),
    ...(hit.duplicates && { duplicates: hit.duplicates }),
    ...(hit.variants && { variants: hit.variants.map(presentVariant) }),
    ...(hit.photo && { photo: presentPhoto(hit.id, hit.photo) }),
  };
}

/** The photo of a product with several that a result matched; `photos` lists all of them to flip through. */
export function presentPhoto(id: string, photo: MatchedPhoto) {
  const url = (index: number) => (index === 0 ? imageUrl(id) : `${imageUrl(id)}?photo=${index}`);
  return { index: photo.index, of: photo.of, ...(photo.view && { view: photo.view }), imageUrl: url(photo.index), photos: Array.from({ length: photo.of }, (_, i) => url(i)) };
}

export function presentVariant(variant: { id: string; score: number; metadata: Record<string, string> }) {
  return { id: variant.id, score: variant.score, metadata: variant.metadata, imageUrl: imageUrl(variant.id) };
}

/** `filter=field=value` query values as library filters (unknown fields are refused). */
export function filtersOf(ctx: ServerContext, specs: string[] | undefined): Filters {
  return parseFilters(specs, ctx.lookalike.manifest.catalog.columns);
}

/** The stored item of an embedded id, or ITEM_NOT_FOUND. */
export function itemOf(ctx: ServerContext, id: string): StoredItem {
  return ctx.lookalike.item(id);
}

/** A search's query as the API shows it: variants carry their image URL. */
export function presentQuery<Q extends { variants?: Array<{ id: string; score: number; metadata: Record<string, string> }> }>(query: Q) {
  return { ...query, ...(query.variants && { variants: query.variants.map(presentVariant) }) };
}
