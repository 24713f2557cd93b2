/**
 * Words in a search: "navy polo", "leather belt". They are matched against the catalog's
 * own text (the product name and every attribute value) by the store's full-text engine:
 * SQLite FTS5 (porter stemmer) on the embedded store, PostgreSQL's `english` text search on
 * the shared one. Both stem, so plurals and simple inflections match ("shirts" finds
 * "Shirt", "running" finds "Run"). Neither forgives typos: a word the engine matches
 * nowhere is replaced here by the catalog word nearest to it in Damerau-Levenshtein
 * distance ("shrit" -> "shirt"), and the response says so.
 */
import damerauLevenshtein from 'damerau-levenshtein';
import { LookalikeError } from '../errors.js';
import { invalidParameterError } from '../validate.js';
import type { TextMatch } from '../store/types.js';
import type { ItemTable } from './items.js';

/** How words combine with a photo: only products matching every word, or matches first. */
export type TextMode = 'filter' | 'boost';
export const TEXT_MODES: readonly TextMode[] = ['filter', 'boost'];

/** The longest text a search may carry, in characters. */
export const MAX_TEXT_CHARS = 200;

/**
 * Words dropped before matching, so that both engines see the same words: PostgreSQL's
 * `english` configuration drops these itself, FTS5 would require them ("men's" is
 * "men" + "s" to it, and a product name without an apostrophe would then not match).
 */
const STOP_WORDS = new Set(['a', 'an', 'and', 'the', 'of', 'for', 'with', 'in', 'on', 'to', 's', 't', 'by', 'or']);

/**
 * The words of a text, lower-cased, stop words left out (letters and digits only). "T-shirt"
 * and "t shirt" are one word, "tshirt", as the stores index them (store/sqlite.ts,
 * store/postgres.ts): else "navy shirt" would find every navy T-shirt.
 */
export function textTerms(text: string): string[] {
  return (text.toLowerCase().replace(/\bt[\s-]?shirt/g, 'tshirt').match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => !STOP_WORDS.has(w));
}

/** A caller's text: a string of at most MAX_TEXT_CHARS with a word to search for. */
export function checkText(text: unknown): string[] | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== 'string' || text.length > MAX_TEXT_CHARS) throw invalidParameterError('text', `words to search for, at most ${MAX_TEXT_CHARS} characters`, text);
  const terms = textTerms(text);
  if (!terms.length) throw new LookalikeError('TEXT_NO_WORDS', { text });
  return terms;
}

/**
 * Added to a product's cosine, times its text relevance (0..1, the best match 1), when
 * `text_mode=boost`: a full match climbs over products up to 0.1 more similar in looks, and
 * never over the photo's own near-duplicates. Chosen, not tuned (docs/asking.md).
 */
export const TEXT_BOOST = 0.1;

/** Visual candidates re-ranked by a boost, per result asked for (at least 100). */
export const BOOST_CANDIDATES_PER_RESULT = 5;

/** Edit distance allowed for a typo: one for short words, two from six letters. */
function allowedDistance(word: string): number {
  if (word.length < 4) return 0;
  return word.length < 6 ? 1 : 2;
}

/**
 * The vocabulary of a catalog's text (lower-cased words of every metadata value, with how
 * often each occurs), for correcting typos.
 */
export class Vocabulary {
  private readonly counts = new Map<string, number>();

  constructor(metadata: ReadonlyArray<Record<string, string>>) {
    for (const m of metadata) {
      for (const value of Object.values(m)) for (const w of textTerms(value)) this.counts.set(w, (this.counts.get(w) ?? 0) + 1);
    }
  }

  has(word: string): boolean {
    return this.counts.has(word);
  }

  /**
   * The catalog word nearest to `word` (fewest edits, then the most frequent), within the
   * allowed distance; undefined when none is near enough.
   */
  nearest(word: string): string | undefined {
    const limit = allowedDistance(word);
    if (!limit) return undefined;
    let best: { word: string; distance: number; count: number } | undefined;
    for (const [candidate, count] of this.counts) {
      if (Math.abs(candidate.length - word.length) > limit || /^\d+$/.test(candidate)) continue;
      const distance = damerauLevenshtein(word, candidate).steps;
      if (distance > limit) continue;
      if (!best || distance < best.distance || (distance === best.distance && count > best.count)) best = { word: candidate, distance, count };
    }
    return best?.word;
  }
}

export type { TextMatch };

/** The store's side of a text search (store/sqlite.ts, store/postgres.ts). */
export interface TextSearcher {
  /** Items matching every term (stemmed), most relevant first. */
  searchText(terms: string[]): TextMatch[] | Promise<TextMatch[]>;
}

/** The terms searched, after correction, and the matches. */
export interface TextResult {
  terms: string[];
  /** The words as searched when some were corrected ("navy shirt" for "navy shrit"). */
  corrected?: string;
  matches: TextMatch[];
}

/**
 * Matches for `terms`. When nothing matches, each word the engine finds nowhere on its own
 * is replaced by its nearest catalog word, and the search runs once more.
 */
export async function matchText(searcher: TextSearcher, vocabulary: Vocabulary, terms: string[]): Promise<TextResult> {
  const matches = await searcher.searchText(terms);
  if (matches.length) return { terms, matches };
  let changed = false;
  const fixed: string[] = [];
  for (const term of terms) {
    const alone = vocabulary.has(term) || (await searcher.searchText([term])).length > 0;
    const near = alone ? undefined : vocabulary.nearest(term);
    if (near && near !== term) changed = true;
    fixed.push(near ?? term);
  }
  if (!changed) return { terms, matches };
  return { terms: fixed, corrected: fixed.join(' '), matches: await searcher.searchText(fixed) };
}

/** A text's matches among the item table's rows (SearchEngine.textHits). */
export interface TextHits {
  /** The words searched (after correction). */
  terms: string[];
  /** The words as searched, when some were corrected. */
  corrected?: string;
  /** Per row: 0 no match, else relevance relative to the best match (1). */
  relevance: Float32Array;
  /** 1 for the rows that match. */
  mask: Uint8Array;
  /** Matching rows, most relevant first. */
  rows: Int32Array;
}

/** The rows whose text holds every term, a word matched nowhere corrected (matchText). */
export async function textHitsOf(table: ItemTable, searcher: TextSearcher, vocabulary: Vocabulary, terms: string[]): Promise<TextHits> {
  const found = await matchText(searcher, vocabulary, terms);
  const relevance = new Float32Array(table.size);
  const mask = new Uint8Array(table.size);
  const rows: number[] = [];
  const best = found.matches.reduce((m, h) => Math.max(m, h.score), 0) || 1;
  for (const h of found.matches) {
    const row = table.rowIfAny(h.id);
    if (row === undefined || mask[row]) continue;
    mask[row] = 1;
    relevance[row] = Math.max(1e-6, h.score / best);
    rows.push(row);
  }
  return { terms: found.terms, corrected: found.corrected, relevance, mask, rows: Int32Array.from(rows) };
}
