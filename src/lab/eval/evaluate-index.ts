/**
 * Evaluation of an opened index in the space its searches use (the backbone pooling, or
 * a trained head's space through `lookalike.space({mode})`), with the catalog's metadata
 * columns as labels.
 */
import { DEFAULT_K, FASHION_LABELS } from '../../defaults.js';
import { LookalikeError } from '../../errors.js';
import type { Lookalike } from '../../lookalike.js';
import type { Pooling } from '../../model/registry.js';
import { findNeighbours, neighbourScores, summarise, type EvalResult, type Neighbours } from './evaluate.js';
import { scoreHistogram, type Histogram } from '../../math/stats.js';
import { isHeldOut } from '../../catalog/split.js';
import type { SearchMethod } from '../../search/engine.js';
import { leadRowsOf } from '../../search/products.js';
import type { EmbeddingSpace } from '../../search/space.js';

/** The attributes evaluated by default, when the catalog has them. */
export const DEFAULT_ATTRIBUTES: readonly string[] = FASHION_LABELS;

export interface IndexEvalOptions {
  k?: number;
  /** Metadata columns to evaluate; default: DEFAULT_ATTRIBUTES present in the catalog. */
  attributes?: string[];
  /** Held-out query share (0..1); default leave-one-out over the whole index. */
  queries?: number;
  pooling?: Pooling;
  mode?: string;
  confusionClasses?: number;
  /** 'ann': neighbours through the ANN index (as searches find them), to compare with exact. */
  search?: SearchMethod;
  onProgress?: (done: number, total: number) => void;
}

export interface IndexEvalResult extends EvalResult {
  /** The space evaluated, e.g. "backbone:max". */
  space: string;
  index: string;
  /** Similarity of the top-k neighbours with the same / another value of the first attribute. */
  scores: { attribute: string; histogram: Histogram; same: number; different: number };
}

/** Picks and checks the attributes to evaluate against the catalog's columns. */
export function resolveAttributes(columns: string[], wanted?: string[]): string[] {
  if (wanted?.length) {
    const unknown = wanted.filter((a) => !columns.includes(a));
    if (unknown.length) {
      throw new LookalikeError('BAD_OPTION', { message: `unknown attribute ${unknown.map((u) => `"${u}"`).join(', ')}. Columns in this catalog: ${columns.join(', ') || '(none)'}.` });
    }
    return [...new Set(wanted)];
  }
  const defaults = DEFAULT_ATTRIBUTES.filter((a) => columns.includes(a));
  if (defaults.length) return defaults;
  if (columns.length) return columns.filter((c) => c !== 'productDisplayName');
  throw new LookalikeError('BAD_OPTION', { message: 'this catalog has no metadata columns to evaluate against: evaluation needs labels (styles.csv columns, or sub-folders of an image folder).' });
}

/** Per attribute, the value of every matrix row of the index. */
export function labelsOf(lookalike: Lookalike, attributes: string[]): Record<string, string[]> {
  const items = lookalike.indexView().items;
  return Object.fromEntries(attributes.map((a) => [a, items.map((i) => (i.metadata[a] ?? '').trim())]));
}

export async function evaluateIndex(lookalike: Lookalike, options: IndexEvalOptions = {}): Promise<IndexEvalResult> {
  const started = performance.now();
  const attributes = resolveAttributes(lookalike.manifest.catalog.columns, options.attributes);
  const space = lookalike.space({ pooling: options.pooling, mode: options.mode });
  const view = lookalike.indexView();
  const matrix = view.matrix(space);
  const dim = matrix.dim;
  let data = matrix.data;
  let ids = view.items.map((i) => i.id);
  let labels = labelsOf(lookalike, attributes);
  // Several photos per product: each product once, by its first photo, so that its own other
  // photos are never its neighbours (search/products.ts); answered exactly.
  const photos = view.photos;
  const lead = photos.multi ? leadRowsOf(photos, matrix.data, dim) : undefined;
  if (lead) {
    data = lead.data;
    ids = Array.from(lead.rows, (r) => photos.productOfRow(r).id);
    labels = Object.fromEntries(Object.entries(labels).map(([a, values]) => [a, Array.from(lead.rows, (r) => values[r])]));
  }
  const k = options.k ?? DEFAULT_K;
  const neighbours = options.search === 'ann' && !lead
    ? await annNeighbours(lookalike, space, ids, k, options)
    : await findNeighbours(data, dim, ids, k, { queries: options.queries, onProgress: options.onProgress });
  const result = summarise(neighbours, { ids, labels, dim, queries: options.queries, confusionClasses: options.confusionClasses }, k, started);
  const { same, different } = neighbourScores(neighbours, labels[attributes[0]], k);
  const scores = { attribute: attributes[0], histogram: scoreHistogram(same, different), same: same.length, different: different.length };
  return { ...result, seconds: (performance.now() - started) / 1000, space: space.id, index: lookalike.indexDir, scores };
}

/** The same protocols as findNeighbours, each query answered through the ANN index. */
async function annNeighbours(lookalike: Lookalike, space: EmbeddingSpace, ids: string[], k: number, options: IndexEvalOptions): Promise<Neighbours> {
  const started = performance.now();
  const n = ids.length;
  const fraction = options.queries;
  if (fraction === undefined) {
    const queryRows = new Int32Array(n).map((_, i) => i);
    const hits = await lookalike.indexView().annTopK(space, queryRows, k, undefined, options.onProgress);
    return { queryRows, rows: hits.rows, scores: hits.scores, k: hits.k, isCandidate: new Uint8Array(n).fill(1), protocol: 'leave-one-out', seconds: (performance.now() - started) / 1000 };
  }
  const isCandidate = new Uint8Array(n);
  const queryList: number[] = [];
  ids.forEach((id, row) => { if (isHeldOut(id, fraction)) queryList.push(row); else isCandidate[row] = 1; });
  const queryRows = Int32Array.from(queryList);
  const hits = await lookalike.indexView().annTopK(space, queryRows, k, isCandidate, options.onProgress);
  return { queryRows, rows: hits.rows, scores: hits.scores, k: hits.k, isCandidate, protocol: 'held-out', seconds: (performance.now() - started) / 1000 };
}
