/**
 * Recommend from examples: products a shopper liked and ones they did not ("like / not
 * this"), as vectors of one space, turned into a ranking. Three ways are offered, the ones
 * the engines Lookalike is compared with use (Qdrant's recommend API):
 *
 *   average      one query: the mean of the liked vectors minus DISLIKE_WEIGHT times the
 *                mean of the disliked ones, normalised (Rocchio's relevance feedback);
 *                searched as any query is (exact, ANN, pgvector).
 *   best_score   each product scored by its best cosine to a liked example, or, when a
 *                disliked example is nearer still, by minus that cosine (Qdrant's
 *                best_score): every liked example gets its own neighbours.
 *   sum_scores   the sum of cosines to the liked minus the sum to the disliked.
 *
 * `average` is the default: on the dev catalog it put the most products of the liked
 * articleType and colour in the top 10 (docs/asking.md has the figures and the command).
 */
import { normaliseRows } from './kernel.js';
import { dotAt } from '../math/linalg.js';

export type RecommendStrategy = 'average' | 'best_score' | 'sum_scores';
export const RECOMMEND_STRATEGIES: readonly RecommendStrategy[] = ['average', 'best_score', 'sum_scores'];
export const DEFAULT_RECOMMEND_STRATEGY: RecommendStrategy = 'average';

/**
 * How much the mean disliked vector is taken away in `average`. Measured in docs/asking.md:
 * a disliked product of the liked type shares most of its look with the liked ones, so
 * taking it away also takes away some of the liked type (share of the top 10 with the liked
 * type and colour: 0.315 at 0, 0.307 at 0.25, 0.283 at 0.5, 0.147 at 1); 0.25 still moves
 * the disliked colour down the list (docs/asking.md) at little cost.
 */
export const DISLIKE_WEIGHT = 0.25;

/** The most examples one recommendation takes (liked and disliked together). */
export const MAX_EXAMPLES = 50;

/** mean(liked) - weight * mean(disliked), normalised; every example normalised first. */
export function averageQuery(liked: readonly Float32Array[], disliked: readonly Float32Array[], weight = DISLIKE_WEIGHT): Float32Array {
  const dim = liked[0].length;
  const out = new Float32Array(dim);
  const addScaled = (vectors: readonly Float32Array[], scale: number) => {
    for (const v of vectors) {
      const unit = normaliseRows(Float32Array.from(v), dim);
      for (let j = 0; j < dim; j++) out[j] += (scale / vectors.length) * unit[j];
    }
  };
  addScaled(liked, 1);
  if (disliked.length) addScaled(disliked, -weight);
  return normaliseRows(out, dim);
}

/**
 * Per row of `matrix` (n x dim, rows normalised), the score of a multi-example strategy
 * (best_score or sum_scores) against normalised examples.
 */
export function exampleScores(matrix: Float32Array, dim: number, liked: readonly Float32Array[], disliked: readonly Float32Array[], strategy: Exclude<RecommendStrategy, 'average'>): Float32Array {
  const n = matrix.length / dim;
  const unit = (v: Float32Array) => normaliseRows(Float32Array.from(v), dim);
  const pos = liked.map(unit), neg = disliked.map(unit);
  const scores = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    const off = r * dim;
    if (strategy === 'sum_scores') {
      let s = 0;
      for (const p of pos) s += dotAt(matrix, off, p, dim);
      for (const q of neg) s -= dotAt(matrix, off, q, dim);
      scores[r] = s;
      continue;
    }
    let best = -Infinity, worst = -Infinity;
    for (const p of pos) best = Math.max(best, dotAt(matrix, off, p, dim));
    for (const q of neg) worst = Math.max(worst, dotAt(matrix, off, q, dim));
    scores[r] = best >= worst ? best : -worst;
  }
  return scores;
}
