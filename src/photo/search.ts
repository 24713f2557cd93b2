/**
 * How a shopper's photo is searched, once it is vectors (photo/vectors.ts). A photo lies
 * farther from every catalog vector than a catalog item does, and that changes three things:
 *
 *   space       a head's space blended with the plain backbone (PHOTO_BLEND);
 *   depth       more ANN candidates re-ranked (PHOTO_ANN_CANDIDATES);
 *   expansion   when the top result stands out, the rest searched with its vector added
 *               (EXPANSION_GAP, expandedQuery, searchPhoto).
 *
 * Catalog items (`similar`, `recommend` without photos, `eval`) are searched without any of
 * them. Lookalike.searchByImage searches here; `lookalike robustness` measures the same
 * constants (eval/robustness.ts).
 */
import { backboneSpace, blendedSpace, type EmbeddingSpace } from '../search/space.js';
import { normaliseRows } from '../search/kernel.js';
import { unitSum } from './vectors.js';

/**
 * Share of the head in the space photos are searched in; the rest is the plain backbone
 * (max pooling). The head learnt from packshots on white: on a shopper's photo (busy
 * background, dim warm light) its vector drifts off what it knows, while ImageNet
 * features stay put. Blending keeps the head's say on what looks alike and the
 * backbone's grip on the very product. Chosen with `lookalike robustness` (docs/shopper-photos.md).
 */
export const PHOTO_BLEND = 0.2;

/** The space photos are searched in when the index has a head: `headSpace` blended with the backbone's max pooling. */
export function photoBlendSpace(headSpace: EmbeddingSpace, backboneDim: number): EmbeddingSpace {
  return blendedSpace(headSpace, backboneSpace('max', backboneDim), PHOTO_BLEND);
}

/**
 * Candidates re-ranked for a photo query. Measured with `lookalike robustness --search ann`
 * (600 shopper photos of the dev catalog, head default mode): with 64 candidates the very
 * product's recall@10 fell from 0.938 (exact) to 0.918, and with other products beside it
 * from 0.820 to 0.750; see docs/ann.md for the figures at this depth.
 */
export const PHOTO_ANN_CANDIDATES = 512;

/**
 * A photo's top result ahead of the second by at least this much cosine is taken for the
 * product itself (chosen with `lookalike robustness`: at 0.01 and 0.02 wrong top results
 * were expanded too and recall of the very product fell; docs/shopper-photos.md).
 */
export const EXPANSION_GAP = 0.03;

/**
 * The query for a photo's results when its top result stands out: the photo's vector plus
 * that product's catalog vector (both L2-normalised), normalised. A shopper's photo is
 * noisier than a packshot; once the product is found, "more like it" is best searched from
 * the product's own vector as well (average query expansion, gated by confidence). The top
 * result stays first: no item is nearer the sum than the top one. Undefined: search with the
 * photo alone.
 */
export function expandedQuery(query: Float32Array, scores: readonly number[], top: Float32Array | undefined): Float32Array | undefined {
  if (!top || scores.length < 2 || scores[0] - scores[1] < EXPANSION_GAP) return undefined;
  const sum = unitSum(query, top);
  return normaliseRows(sum, sum.length);
}

/** What searchPhoto asks of the index, in the space the photo is searched in. */
export interface PhotoSearchSteps<Hit extends { id: string; score: number }> {
  /** The `k` nearest by the vector alone: no words, no threshold. */
  look(query: Float32Array, k: number): Promise<Hit[]>;
  /** The `k` nearest as the search asks for them (words included), no threshold. */
  find(query: Float32Array, k: number): Promise<Hit[]>;
  /** The unit vector of a hit (of the photo that matched, for a product with several). */
  vectorOf(hit: Hit): Promise<Float32Array>;
}

/**
 * A photo's query vector searched with expansion: one look first, at least two results, to
 * see whether the top one stands out (expandedQuery); then `fetch(want)` gives the best
 * `want` hits for the list (the caller may ask for more to fill it after dedupe or
 * grouping), searched with the expanded query when there is one, the threshold applied.
 * The look is visual only: words re-rank, they do not say which product the photo shows;
 * and the threshold applies to the list, not to the look. The look serves as the list
 * when nothing changed since (no expansion, no words) and it holds enough.
 */
export async function searchPhoto<Hit extends { id: string; score: number }>(
  query: Float32Array,
  options: { k: number; threshold?: number; expand: boolean; words: boolean },
  steps: PhotoSearchSteps<Hit>,
): Promise<{ fetch: (want: number) => Promise<Hit[]>; expanded: boolean }> {
  const { k, threshold } = options;
  const first = await steps.look(query, Math.max(k, 2));
  const next = options.expand && first.length >= 2
    ? expandedQuery(query, first.map((r) => r.score), await steps.vectorOf(first[0]))
    : undefined;
  const fetch = async (want: number) => {
    const hits = !next && !options.words && (want <= first.length || first.length < Math.max(k, 2)) ? first : await steps.find(next ?? query, want);
    return hits.filter((r) => threshold === undefined || r.score >= threshold);
  };
  return { fetch, expanded: !!next };
}
