/**
 * What the search commands (query, similar, recommend) share besides their options
 * (options.ts searchOptions): their flags as library options, and how answers print.
 */
import { SHOWN_COLUMNS } from '../defaults.js';
import type { SearchResponse } from '../lookalike.js';
import type { Pooling } from '../model/registry.js';
import type { SearchHit, SearchMethod } from '../search/engine.js';
import { parseFilters } from '../search/filters.js';
import type { TextMode } from '../search/text.js';
import { print, printJson, table } from './shared.js';

export interface SearchFlags { index: string; k: number; threshold?: number; filter: string[]; pooling?: Pooling; mode?: string; search?: SearchMethod; text?: string; textMode?: TextMode; dedupe?: boolean; group?: string; json?: boolean }

/** The search options every search command shares, from its flags. */
export function searchFlags(flags: SearchFlags, columns: string[]) {
  return {
    k: flags.k, threshold: flags.threshold, pooling: flags.pooling, mode: flags.mode, search: flags.search, text: flags.text, textMode: flags.textMode, dedupe: flags.dedupe, group: flags.group,
    filters: parseFilters(flags.filter, columns),
  };
}

export const boxText = (r: { x: number; y: number; w: number; h: number }) => [r.x, r.y, r.w, r.h].map((v) => v.toFixed(2)).join(',');

export function printResponse(response: SearchResponse, flags: SearchFlags, columns: string[]): void {
  const json = flags.json;
  const row = (r: SearchHit) => ({ id: r.id, rank: r.rank, score: r.score, ...r.metadata, image: r.image, ...(r.duplicates && { duplicates: r.duplicates }), ...(r.variants && { variants: r.variants }), ...(r.photo && { photo: r.photo }) });
  if (json) {
    printJson({
      query: response.query,
      space: response.space,
      ...(response.regions ? { regions: response.regions } : {}),
      results: response.results.map(row),
      ...(response.looks ? { looks: response.looks.map((l) => ({ box: l.box, results: l.results.map(row) })) } : {}),
    });
    return;
  }
  if (response.query.corrected) print(`(searched for "${response.query.corrected}": no product matched "${response.query.text}")`);
  printResults(response, flags, columns);
  for (const [i, look] of (response.looks ?? []).entries()) {
    print('');
    print(`region ${i + 1} (${boxText(look.box)}):`);
    printResults({ ...response, results: look.results }, flags, columns);
  }
}

function printResults(response: SearchResponse, flags: SearchFlags, columns: string[]): void {
  if (!response.results.length) {
    // Only suggest what was actually given: a tuned default threshold counts as given.
    const hints = [response.threshold !== undefined && 'lower --threshold', flags.filter.length > 0 && 'loosen --filter'].filter(Boolean);
    print(`No products${flags.filter.length ? ' match the filter' : ''}${response.threshold !== undefined ? ` above the threshold ${response.threshold}` : ''}.${hints.length ? ` Try to ${hints.join(' or ')}.` : ''}`);
    return;
  }
  const shown = SHOWN_COLUMNS.filter((c) => columns.includes(c));
  const cols = shown.length ? shown : columns.slice(0, 3);
  const hidden = response.results.some((r) => r.duplicates);
  const folded = response.results.some((r) => r.variants);
  const photos = response.results.some((r) => r.photo);
  print(table([
    ['rank', 'id', 'score', ...cols, ...(hidden ? ['near-duplicates hidden'] : []), ...(folded ? [`same ${response.query.groupedBy}`] : []), ...(photos ? ['photo matched'] : [])],
    ...response.results.map((r) => [
      String(r.rank), r.id, r.score.toFixed(4), ...cols.map((c) => r.metadata[c] ?? ''),
      ...(hidden ? [(r.duplicates ?? []).join(' ')] : []), ...(folded ? [(r.variants ?? []).map((v) => v.id).join(' ')] : []),
      ...(photos ? [r.photo ? `${r.photo.index + 1} of ${r.photo.of}${r.photo.view ? ` (${r.photo.view})` : ''}` : ''] : []),
    ]),
  ]));
}
