/**
 * How a query vector becomes the best rows of one space. Three strategies answer the same
 * request: exact (every row scored, search/exact-searcher.ts), ANN (a graph's candidates
 * re-ranked exactly, search/ann-searcher.ts) and the database (pgvector,
 * search/db-searcher.ts). The engine picks one per space and method when the space is
 * first searched that way, and keeps it: a query never chooses.
 */
import type { Filters } from './filters.js';
import type { Hit, TopKOptions } from './kernel.js';
import type { ItemTable } from './items.js';

/** How a search is answered: exact (every row scored) or through the ANN index. */
/** `db`: answered by the store itself (PostgreSQL + pgvector), see DbSearcher. */
export type SearchMethod = 'exact' | 'ann' | 'db';
export type SearchSetting = SearchMethod | 'auto';
export const SEARCH_SETTINGS: readonly SearchSetting[] = ['auto', 'exact', 'ann', 'db'];

/**
 * `auto` searches through the ANN index from this many items. Measured on this project's
 * 2-core machine under load (docs/ann.md): exact search costs 0.6 ms at 2,000 x 320-d, 6-10 ms
 * at 5,000 and 11-25 ms at 10,000 (320-d head / 2048-d backbone), where ANN answers in
 * ~0.6 ms; from 10,000 items the one-off build (a few seconds, saved beside the index)
 * pays for itself, below it exact search is fast enough and needs no extra file.
 */
export const ANN_MIN_ITEMS = 10_000;

/** The method a setting means for a catalog of `size` items: auto is ANN from ANN_MIN_ITEMS. */
export function methodOf(setting: SearchSetting, size: number): SearchMethod {
  if (setting !== 'auto') return setting;
  return size >= ANN_MIN_ITEMS ? 'ann' : 'exact';
}

/** One search in a space, as every strategy takes it. k and threshold are checked where the library is entered. */
export interface SearchRequest {
  k: number;
  /** Minimum score to keep. */
  threshold?: number;
  filters?: Filters;
  /** Words every result must hold: the words (a database matches them itself) and the rows holding them. */
  text?: { terms: string[]; mask?: Uint8Array };
  /** An item never returned (the query item itself). */
  excludeId?: string;
  /**
   * The rows eligible, already combining the filters with anything else; in memory it
   * replaces `filters` and `text`.
   */
  rowMask?: Uint8Array;
  /** The least number of a graph's candidates re-ranked (ANN only). */
  candidates?: number;
}

export interface Searcher {
  readonly method: SearchMethod;
  /** The best rows for a query vector of this searcher's space (normalised), best first. */
  search(query: Float32Array, request: SearchRequest): Promise<Hit[]>;
  /** A row's vector in this space, read where this strategy keeps it. */
  vectorOf(row: number): Promise<Float32Array>;
}

/** A request as the in-memory kernels take it: filters, words and the excluded id as rows. */
export function rowOptions(table: ItemTable, request: SearchRequest): TopKOptions {
  return {
    k: request.k,
    threshold: request.threshold,
    mask: request.rowMask ?? table.eligibleRows(request.filters, request.text?.mask),
    exclude: request.excludeId !== undefined ? table.rowIfAny(request.excludeId) : undefined,
  };
}
