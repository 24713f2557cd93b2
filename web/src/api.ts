// The page's client of the Lookalike HTTP API (same origin). Every failure becomes an
// ApiError with a message a shopper can act on.
import type { components } from './api-schema';

// The shapes of the API's answers, generated from its OpenAPI document (api-schema.ts;
// test/integration/server.test.ts fails when the two disagree). Never written by hand here.
type Schemas = components['schemas'];
export type Metadata = Schemas['Metadata'];
export type Item = Schemas['Item'];
export type Hit = Schemas['Hit'];
export type SearchResponse = Schemas['SearchResponse'];
export type ItemPage = Schemas['ItemPage'];
export type Facets = Schemas['Facets'];
export type Health = Schemas['Health'];
export type MapData = Schemas['Map'];
/** A rectangle relative to the photo (0..1). */
export type Region = NonNullable<SearchResponse['regions']>[number];

/** One value per field: the page offers one choice per filter. */
export type Filters = Record<string, string>;

export interface SearchParams {
  /** Absent: the server uses the index's default k (the one `lookalike tune --apply` stored). */
  k?: number;
  threshold: number;
  filters: Filters;
  mode?: string;
  /** Words: only products whose name or attributes hold them. */
  text?: string;
}

/** One product of an outfit photo and its own results (shop the look). */
export type Look = NonNullable<SearchResponse['looks']>[number];

/** A shopper's "like" / "not this" marks, and the photo liked as the query. */
export interface Examples { like: string[]; unlike: string[]; photo?: { blob: Blob; name: string } }

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from Retry-After on a 503. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

function filterParams(params: URLSearchParams, filters: Filters): void {
  for (const [field, value] of Object.entries(filters)) if (value) params.append('filter', `${field}=${value}`);
}

function searchQuery(p: SearchParams): URLSearchParams {
  const q = new URLSearchParams();
  if (p.k !== undefined) q.set('k', String(p.k));
  if (p.threshold > 0) q.set('threshold', String(p.threshold));
  if (p.mode) q.set('mode', p.mode);
  if (p.text) q.set('text', p.text);
  filterParams(q, p.filters);
  return q;
}

/** The search parameters as multipart fields. */
function formFields(form: FormData, p: SearchParams): void {
  if (p.k !== undefined) form.append('k', String(p.k));
  if (p.threshold > 0) form.append('threshold', String(p.threshold));
  if (p.mode) form.append('mode', p.mode);
  if (p.text) form.append('text', p.text);
  for (const [field, value] of Object.entries(p.filters)) if (value) form.append('filter', `${field}=${value}`);
}

async function call<T>(url: string, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers: { accept: 'application/json', ...init.headers } });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'Cannot reach the Lookalike server. Check that it is still running and try again.');
  }
  if (res.ok) return (await res.json()) as T;
  let code = 'HTTP_' + res.status;
  let message = `The server answered ${res.status} ${res.statusText}.`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.message) {
      code = body.error.code ?? code;
      message = sentence(body.error.message);
    }
  } catch {
    // Not JSON (a proxy's error page): keep the generic message.
  }
  const retry = Number(res.headers.get('retry-after'));
  throw new ApiError(res.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}

/** API messages start lower-case (they also end CLI lines); on the page they are sentences. */
export function sentence(message: string): string {
  return message.charAt(0).toUpperCase() + message.slice(1);
}

export const api = {
  health: () => call<Health>('/api/health'),

  facets(filters: Filters, signal?: AbortSignal): Promise<Facets> {
    const q = new URLSearchParams();
    filterParams(q, filters);
    return call<Facets>(`/api/facets?${q}`, { signal });
  },

  items(filters: Filters, offset: number, limit: number, signal?: AbortSignal): Promise<ItemPage> {
    const q = new URLSearchParams({ offset: String(offset), limit: String(limit) });
    filterParams(q, filters);
    return call<ItemPage>(`/api/items?${q}`, { signal });
  },

  item: (id: string, signal?: AbortSignal) => call<Item>(`/api/items/${encodeURIComponent(id)}`, { signal }),

  similar: (id: string, p: SearchParams, signal?: AbortSignal) =>
    call<SearchResponse>(`/api/items/${encodeURIComponent(id)}/similar?${searchQuery(p)}`, { signal }),

  searchPhoto(photo: Blob, name: string, p: SearchParams, signal?: AbortSignal, crop?: Region, shopTheLook = false): Promise<SearchResponse> {
    const form = new FormData();
    form.append('image', photo, name);
    if (crop) form.append('crop', [crop.x, crop.y, crop.w, crop.h].map((v) => Math.min(1, Math.max(0, v)).toFixed(4)).join(','));
    if (shopTheLook) form.append('shop_the_look', 'true');
    formFields(form, p);
    return call<SearchResponse>('/api/search', { method: 'POST', body: form, signal });
  },

  /** Words alone: products matching them, best match first. */
  searchText(text: string, p: SearchParams, signal?: AbortSignal): Promise<SearchResponse> {
    const body: Record<string, unknown> = { text };
    if (p.k !== undefined) body.k = p.k;
    const filters = Object.entries(p.filters).filter(([, v]) => v).map(([f, v]) => `${f}=${v}`);
    if (filters.length) body.filter = filters;
    return call<SearchResponse>('/api/search', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal });
  },

  /** Products like the liked examples (and the photo) and unlike the disliked ones. */
  recommend(examples: Examples, p: SearchParams, signal?: AbortSignal): Promise<SearchResponse> {
    const form = new FormData();
    for (const id of examples.like) form.append('like', id);
    for (const id of examples.unlike) form.append('unlike', id);
    if (examples.photo) form.append('like_image', examples.photo.blob, examples.photo.name);
    formFields(form, p);
    return call<SearchResponse>('/api/recommend', { method: 'POST', body: form, signal });
  },

  map: (signal?: AbortSignal) => call<MapData>('/api/map', { signal }),
};
