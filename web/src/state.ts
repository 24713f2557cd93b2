// What the address bar holds: the view, the item searched ("more like this"), k, the
// threshold, the filters and the page. Photos cannot live in a URL; everything else does,
// so a results page can be shared and reloaded.
import type { Filters } from './api';

export type View = 'search' | 'browse' | 'map';

export interface State {
  view: View;
  /** Catalog item searched by ("more like this"); absent for a photo or no query. */
  id?: string;
  /** Results wanted; absent: the index's default (GET /api/health `defaults.k`). */
  k?: number;
  /** Minimum similarity; 0 means none. */
  threshold: number;
  filters: Filters;
  /** Browse page, from 1. */
  page: number;
  /** Map colouring field. */
  colour?: string;
  /** Similarity mode, when the index has a trained head. */
  mode?: string;
  /** Words narrowing the search (or searched alone). */
  text?: string;
}

export const K_CHOICES = [5, 10, 20, 30, 50, 100];
const VIEWS: View[] = ['search', 'browse', 'map'];

/** Reads the state from a query string; filter fields are the catalog's facet fields. */
export function parseState(search: string, facetFields: string[], maxK: number, modes: string[] = []): State {
  const q = new URLSearchParams(search);
  const int = (name: string, fallback: number, min: number, max: number) => {
    const n = Number(q.get(name));
    return q.has(name) && Number.isInteger(n) && n >= min && n <= max ? n : fallback;
  };
  const threshold = Number(q.get('threshold'));
  const filters: Filters = {};
  for (const field of facetFields) {
    const value = q.get(field);
    if (value) filters[field] = value;
  }
  const view = q.get('view') as View;
  return {
    view: VIEWS.includes(view) ? view : 'search',
    id: q.get('id') || undefined,
    k: q.has('k') ? int('k', 0, 1, maxK) || undefined : undefined,
    threshold: Number.isFinite(threshold) && threshold > 0 && threshold <= 1 ? threshold : 0,
    filters,
    page: int('page', 1, 1, 1_000_000),
    colour: q.get('colour') || undefined,
    mode: modes.includes(q.get('mode') ?? '') ? q.get('mode')! : undefined,
    text: q.get('q')?.trim().slice(0, 200) || undefined,
  };
}

/** The query string of a state, defaults left out so links stay short. */
export function stateQuery(s: State): string {
  const q = new URLSearchParams();
  if (s.view !== 'search') q.set('view', s.view);
  if (s.id && s.view === 'search') q.set('id', s.id);
  if (s.k !== undefined) q.set('k', String(s.k));
  if (s.threshold > 0) q.set('threshold', s.threshold.toFixed(2));
  if (s.mode && s.view === 'search') q.set('mode', s.mode);
  if (s.text && s.view === 'search') q.set('q', s.text);
  for (const [field, value] of Object.entries(s.filters)) if (value) q.set(field, value);
  if (s.view === 'browse' && s.page > 1) q.set('page', String(s.page));
  if (s.view === 'map' && s.colour) q.set('colour', s.colour);
  const text = q.toString();
  return text ? `?${text}` : location.pathname;
}

/** Link to "more like this" for an item, keeping the current settings. */
export function similarHref(s: State, id: string): string {
  return stateQuery({ ...s, view: 'search', id });
}
