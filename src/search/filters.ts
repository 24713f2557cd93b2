/**
 * Metadata filters: `field=value` pairs; several values of one field are alternatives
 * (`articleType=Shirts,Tshirts`), different fields must all match. Matching ignores case.
 */
import { LookalikeError } from '../errors.js';
import { checkFilters } from '../validate.js';

export type Filters = Record<string, string[]>;

/** Parses CLI/query-string filters ("gender=Women", "articleType=Shirts,Tshirts"). */
export function parseFilters(specs: string[] | undefined, knownFields?: string[]): Filters {
  const filters: Filters = {};
  for (const spec of specs ?? []) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new LookalikeError('BAD_FILTER', { filter: spec });
    const field = resolveField(spec.slice(0, eq).trim(), knownFields);
    const values = spec.slice(eq + 1).split(',').map((v) => v.trim()).filter(Boolean);
    filters[field] = [...(filters[field] ?? []), ...values];
  }
  return filters;
}

function resolveField(field: string, known?: string[]): string {
  if (!known) return field;
  const match = known.find((k) => k.toLowerCase() === field.toLowerCase());
  if (!match) throw new LookalikeError('UNKNOWN_FILTER_FIELD', { field, known: known.join(', ') });
  return match;
}

/** 1 for rows whose metadata passes the filters; undefined when there are no filters. */
/** Checks a library caller's filters (shape and fields) before any work is done. */
export function checkFilterFields(filters: Filters | undefined, knownFields: string[]): void {
  for (const field of Object.keys(checkFilters(filters) ?? {})) resolveField(field, knownFields);
}

export function filterMask(metadata: Array<Record<string, string>>, filters: Filters | undefined, knownFields?: string[]): Uint8Array | undefined {
  const entries = Object.entries(checkFilters(filters) ?? {}).filter(([, values]) => values.length);
  if (!entries.length) return undefined;
  const checks = entries.map(([field, values]) => ({ field: resolveField(field, knownFields), values: new Set(values.map((v) => v.toLowerCase())) }));
  const mask = new Uint8Array(metadata.length);
  for (let r = 0; r < metadata.length; r++) {
    const m = metadata[r];
    mask[r] = checks.every(({ field, values }) => values.has((m[field] ?? '').toLowerCase())) ? 1 : 0;
  }
  return mask;
}
