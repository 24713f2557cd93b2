/**
 * Near-duplicate products: groups of catalog items whose photos are near-identical (the
 * same packshot uploaded twice, under two ids, or re-saved). Every item's few nearest
 * neighbours are found once; pairs at or above the threshold are joined with a
 * union-find, so a group is what those pairs connect (as Immich's duplicate finder does).
 */
import { dotAt } from '../math/linalg.js';

export interface DuplicateGroup {
  /** Matrix rows of the group's items, in row (catalog) order. */
  rows: number[];
  /** The lowest and highest cosine among the pairs that joined the group. */
  minScore: number;
  maxScore: number;
}

/** Disjoint sets over 0..n-1 with path halving and union by size. */
class UnionFind {
  private readonly parent: Int32Array;
  private readonly size: Int32Array;

  constructor(n: number) {
    this.parent = Int32Array.from({ length: n }, (_, i) => i);
    this.size = new Int32Array(n).fill(1);
  }

  find(x: number): number {
    while (this.parent[x] !== x) {
      this.parent[x] = this.parent[this.parent[x]];
      x = this.parent[x];
    }
    return x;
  }

  union(a: number, b: number): number {
    let ra = this.find(a), rb = this.find(b);
    if (ra === rb) return ra;
    if (this.size[ra] < this.size[rb]) [ra, rb] = [rb, ra];
    this.parent[rb] = ra;
    this.size[ra] += this.size[rb];
    return ra;
  }
}

/**
 * Groups from every row's nearest neighbours (`neighbours.rows[i * k + j]`, best first,
 * itself left out; -1 where there are fewer): each pair scoring at least `threshold`
 * joins its two rows. Largest groups first, then the closest.
 */
export function groupNeighbours(n: number, neighbours: { k: number; rows: Int32Array; scores: Float32Array }, threshold: number): DuplicateGroup[] {
  const sets = new UnionFind(n);
  const low = new Map<number, number>(), high = new Map<number, number>();
  const pairs: Array<[number, number, number]> = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < neighbours.k; j++) {
      const other = neighbours.rows[i * neighbours.k + j];
      const score = neighbours.scores[i * neighbours.k + j];
      if (other < 0 || !(score >= threshold)) break;
      pairs.push([i, other, score]);
      sets.union(i, other);
    }
  }
  for (const [a, , score] of pairs) {
    const root = sets.find(a);
    low.set(root, Math.min(low.get(root) ?? Infinity, score));
    high.set(root, Math.max(high.get(root) ?? -Infinity, score));
  }
  const members = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const root = sets.find(i);
    if (!low.has(root)) continue;
    const list = members.get(root);
    if (list) list.push(i); else members.set(root, [i]);
  }
  return [...members].map(([root, rows]) => ({ rows, minScore: low.get(root)!, maxScore: high.get(root)! }))
    .sort((a, b) => b.rows.length - a.rows.length || b.minScore - a.minScore || a.rows[0] - b.rows[0]);
}

/**
 * Keeps, in order, each hit that is not a near-duplicate of one kept before it (cosine of
 * their vectors at least `threshold`), at most `k` of them; each kept hit lists the ones it
 * hid. `vectorOf` gives a hit's unit vector. With `query` (a catalog item's own vector, for
 * "more like this"), hits that are near-duplicates of the query item are left out too, and
 * listed in `ofQuery`.
 */
export async function withoutNearDuplicates<H extends { id: string }>(
  hits: H[], k: number, threshold: number, vectorOf: (hit: H) => Promise<Float32Array> | Float32Array, query?: Float32Array,
): Promise<{ kept: Array<H & { duplicates?: string[] }>; ofQuery: string[] }> {
  const kept: Array<{ hit: H & { duplicates?: string[] }; vector: Float32Array }> = [];
  const ofQuery: string[] = [];
  for (const hit of hits) {
    const vector = Float32Array.from(await vectorOf(hit));
    if (query && dotAt(query, 0, vector, vector.length) >= threshold) { ofQuery.push(hit.id); continue; }
    const twin = kept.find((other) => dotAt(other.vector, 0, vector, vector.length) >= threshold);
    if (twin) (twin.hit.duplicates ??= []).push(hit.id);
    else if (kept.length < k) kept.push({ hit: { ...hit }, vector });
  }
  return { kept: kept.map((entry) => entry.hit), ofQuery };
}
