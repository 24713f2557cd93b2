/**
 * How well does search survive shopper photos? Each query is a catalog item photographed
 * anew (photo/synthetic.ts); the index still holds its packshot. We report, per kind of
 * change and overall, for the plain backbone and every mode of the head, and for each way
 * of pooling the query (whole photo, or localised on the product):
 *   - recall@1 and recall@10 of the very product;
 *   - articleType precision@5 of the other results (the very product left out): are the
 *     alternatives still the same kind of thing?
 *
 * Queries are drawn from the held-out share of the catalog (stable id hash, as training
 * uses), so a head never trained on a query's item; the photos are seeded, so the same
 * seed gives the same queries on any machine.
 */
import { PERTURBATIONS, perturbPhoto, type Perturbation } from '../../photo/synthetic.js';
import { isHeldOut } from '../../catalog/split.js';
import { Random, sampleWithoutReplacement } from '../../math/random.js';
import { prepareImage, type PreparedImage } from '../../image/prepare.js';
import { prepareOptionsFor } from '../../image/options.js';
import { batchTopK, type BatchHits } from '../../search/kernel.js';
import type { SearchMethod } from '../../search/engine.js';
import { backboneSpace, type EmbeddingSpace } from '../../search/space.js';
import { LOCALISATIONS, type Localisation } from '../../photo/localise.js';
import { MODES } from '../../head/head.js';
import { headRefOf } from '../../head/index-head.js';
import type { Lookalike } from '../../lookalike.js';
import { photoBatchVectorsBy } from '../../photo/vectors.js';
import { expandedQuery, PHOTO_ANN_CANDIDATES } from '../../photo/search.js';

export interface RobustnessOptions {
  /** Number of shopper photos (spread evenly over the kinds). */
  queries?: number;
  seed?: number;
  kinds?: readonly Perturbation[];
  localisations?: readonly Localisation[];
  /** Label column whose precision@5 is reported. */
  attribute?: string;
  /** Photos kept per kind for the report's strip of examples. */
  examplesPerKind?: number;
  /**
   * How the photos are searched: exact (every item scored, the default: the figures of the
   * model alone) or ann (through the approximate index, as a large catalog's searches are).
   */
  search?: SearchMethod;
  /** Photo searches with expansion by the top result ('on', as searches do), without ('off'), or both side by side (default). */
  expansion?: 'on' | 'off' | 'both';
  onProgress?: (done: number, total: number) => void;
}

export interface RobustnessRow {
  kind: Perturbation | 'overall';
  /** Space id: backbone:max, head:<id>:<mode>. */
  space: string;
  /** Short name of the space for tables: plain, head style, ... */
  spaceLabel: string;
  localise: Localisation;
  /** Whether the results were searched with the top result's vector added (photo/search.ts expandedQuery). */
  expanded: boolean;
  queries: number;
  recallAt1: number;
  recallAt10: number;
  /** Of the top 5 results other than the very product, the share of its attribute value. */
  precisionAt5: number;
}

export interface RobustnessExample {
  kind: Perturbation;
  id: string;
  photo: Buffer;
  /** Top 10 ids per resultKey (space label, localisation, expansion). */
  results: Record<string, string[]>;
}

export interface RobustnessResult {
  queries: number;
  seed: number;
  attribute: string;
  /** Share of the catalog the queries were drawn from (held out from head training). */
  holdout: number;
  rows: RobustnessRow[];
  examples: RobustnessExample[];
  seconds: number;
}

/** The share of the catalog robustness queries come from, and training views never do. */
export const QUERY_HOLDOUT = 0.2;

/**
 * The perturbPhoto seed of query `i` for `--seed seed`. Exported so that training views
 * (train/views.ts) can prove theirs never coincide.
 */
export function querySeed(seed: number, i: number): number {
  return seed * 1_000_003 + i;
}

interface NamedSpace { space: EmbeddingSpace; label: string }

function spacesOf(lookalike: Lookalike): NamedSpace[] {
  const spaces: NamedSpace[] = [{ space: backboneSpace('max', lookalike.manifest.dimension), label: 'plain' }];
  if (lookalike.head) {
    const def = lookalike.head.head.meta.defaultMode;
    for (const mode of MODES) {
      const name = `head ${mode}${mode === def ? ' (default)' : ''}`;
      spaces.push({ space: lookalike.head.space(mode), label: `${name}, head alone` });
      spaces.push({ space: lookalike.head.photoSpace(mode), label: `${name}, photo search` });
    }
  }
  return spaces;
}

export async function evaluateRobustness(lookalike: Lookalike, options: RobustnessOptions = {}): Promise<RobustnessResult> {
  const started = performance.now();
  const total = options.queries ?? 2000;
  const seed = options.seed ?? 1;
  const kinds = options.kinds ?? PERTURBATIONS;
  const locs = options.localisations ?? LOCALISATIONS;
  const attribute = options.attribute ?? 'articleType';
  const index = lookalike.indexView();
  const holdout = headRefOf(lookalike.manifest)?.holdout ?? QUERY_HOLDOUT;

  const candidates: number[] = [];
  index.items.forEach((item, row) => { if (isHeldOut(item.id, holdout)) candidates.push(row); });
  if (!candidates.length) index.items.forEach((_, row) => candidates.push(row));
  const rng = new Random(seed);
  const picked = sampleWithoutReplacement(rng, candidates.length, Math.min(total, candidates.length));
  // Shuffle the sorted sample so kinds do not follow catalog order.
  const order = Array.from(picked, (i) => candidates[i]);
  for (let i = order.length - 1; i > 0; i--) { const j = rng.int(i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  const queries = Array.from({ length: total }, (_, i) => ({
    row: order[i % order.length],
    // An item drawn twice (small catalogs) gets another kind the second time.
    kind: kinds[(i + Math.floor(i / order.length)) % kinds.length],
    others: [rng.int(index.size), rng.int(index.size)],
  }));
  for (const q of queries) q.others = q.others.map((o) => (o === q.row ? (o + 1) % index.size : o));

  const spaces = spacesOf(lookalike);
  const embedder = await lookalike.backbone();
  const prep = prepareOptionsFor(lookalike.settings);
  const vectors = new Map<string, Float32Array>();
  const key = (s: NamedSpace, l: Localisation) => `${s.label}|${l}`;
  for (const s of spaces) for (const l of locs) vectors.set(key(s, l), new Float32Array(total * s.space.dim));
  const examplesPerKind = options.examplesPerKind ?? 2;
  const examplePhotos = new Map<number, Buffer>();
  const seenPerKind = new Map<Perturbation, number>();

  const batch = 8;
  for (let start = 0; start < total; start += batch) {
    const slice = queries.slice(start, start + batch);
    const photos = await Promise.all(slice.map((q, i) => perturbPhoto(
      index.items[q.row].image, q.kind, querySeed(seed, start + i), q.others.map((o) => index.items[o].image),
    )));
    const prepared: PreparedImage[] = await Promise.all(photos.map((p, i) => prepareImage(p, { ...prep, label: `query ${start + i}` })));
    const byLocalisation = await photoBatchVectorsBy(embedder, lookalike.settings, photos.map((p, i) => ({ input: p, prepared: prepared[i] })), locs);
    for (let i = 0; i < slice.length; i++) {
      const q = start + i;
      const seen = seenPerKind.get(slice[i].kind) ?? 0;
      if (seen < examplesPerKind) { examplePhotos.set(q, photos[i]); seenPerKind.set(slice[i].kind, seen + 1); }
      for (const l of locs) {
        const raw = byLocalisation.get(l)![i];
        for (const s of spaces) vectors.get(key(s, l))?.set(s.space.embed(raw), q * s.space.dim);
      }
    }
    options.onProgress?.(Math.min(total, start + batch), total);
  }

  const rows: RobustnessRow[] = [];
  const examples = new Map<number, RobustnessExample>();
  for (const [q, photo] of examplePhotos) examples.set(q, { kind: queries[q].kind, id: index.items[queries[q].row].id, photo, results: {} });
  const labelOf = (row: number) => index.items[row].metadata[attribute] ?? '';
  const expansions = options.expansion === 'on' ? [true] : options.expansion === 'off' ? [false] : [false, true];
  for (const s of spaces) {
    const { data } = index.matrix(s.space);
    for (const l of locs) {
      const qv = vectors.get(key(s, l)) as Float32Array;
      const search = (v: Float32Array, n: number) => (options.search === 'ann' ? annHits(lookalike, s.space, v, n, 10) : batchTopK(data, s.space.dim, v, n, 10));
      const plainHits = await search(qv, total);
      for (const expanded of expansions) {
        const hits = expanded ? await expandedHits(lookalike, s.space, qv, plainHits, search) : plainHits;
        const acc = new Map<string, { n: number; r1: number; r10: number; p5: number }>();
        for (let q = 0; q < total; q++) {
          const truth = queries[q].row;
          const top = Array.from(hits.rows.subarray(q * hits.k, (q + 1) * hits.k));
          const at = top.indexOf(truth);
          const others = top.filter((r) => r !== truth && r >= 0).slice(0, 5);
          const p5 = others.filter((r) => labelOf(r) === labelOf(truth)).length / Math.max(1, others.length);
          for (const k of [queries[q].kind, 'overall']) {
            const a = acc.get(k) ?? { n: 0, r1: 0, r10: 0, p5: 0 };
            a.n++; a.r1 += at === 0 ? 1 : 0; a.r10 += at >= 0 ? 1 : 0; a.p5 += p5;
            acc.set(k, a);
          }
          const example = examples.get(q);
          if (example) example.results[resultKey(s.label, l, expanded)] = top.map((r) => index.items[r].id);
        }
        for (const kind of [...kinds, 'overall' as const]) {
          const a = acc.get(kind);
          if (!a) continue;
          rows.push({ kind, space: s.space.id, spaceLabel: s.label, localise: l, expanded, queries: a.n, recallAt1: a.r1 / a.n, recallAt10: a.r10 / a.n, precisionAt5: a.p5 / a.n });
        }
      }
    }
  }
  return { queries: total, seed, attribute, holdout, rows, examples: [...examples.values()], seconds: (performance.now() - started) / 1000 };
}

/** The key of an example's results: space label, query pooling, and "+ expansion" when expanded. */
export function resultKey(spaceLabel: string, localise: Localisation, expanded: boolean): string {
  return `${spaceLabel}|${localise}${expanded ? ' + expansion' : ''}`;
}

/**
 * The hits a photo search returns with expansion (photo/search.ts expandedQuery): queries
 * whose top result stands out are searched again with its vector added, the others keep
 * their hits.
 */
async function expandedHits(lookalike: Lookalike, space: EmbeddingSpace, queries: Float32Array, hits: BatchHits, search: (v: Float32Array, n: number) => Promise<BatchHits>): Promise<BatchHits> {
  const dim = space.dim;
  const total = queries.length / dim;
  const again: number[] = [];
  const next: Float32Array[] = [];
  for (let q = 0; q < total; q++) {
    const topRow = hits.rows[q * hits.k];
    if (topRow < 0) continue;
    const scores = Array.from(hits.scores.subarray(q * hits.k, q * hits.k + 2));
    const top = await lookalike.indexView().vectorOfForSearch(space, lookalike.indexView().items[topRow].id);
    const expanded = expandedQuery(queries.subarray(q * dim, (q + 1) * dim), scores, top);
    if (expanded) { again.push(q); next.push(expanded); }
  }
  const rows = hits.rows.slice(), scores = hits.scores.slice();
  if (!again.length) return { k: hits.k, rows, scores };
  const stacked = new Float32Array(again.length * dim);
  next.forEach((v, i) => stacked.set(v, i * dim));
  const second = await search(stacked, again.length);
  again.forEach((q, i) => {
    rows.set(second.rows.subarray(i * second.k, (i + 1) * second.k), q * hits.k);
    scores.set(second.scores.subarray(i * second.k, (i + 1) * second.k), q * hits.k);
  });
  return { k: hits.k, rows, scores };
}

/** Top-k of each query through the space's ANN index, in batchTopK's layout. */
async function annHits(lookalike: Lookalike, space: EmbeddingSpace, queries: Float32Array, total: number, k: number): Promise<BatchHits> {
  const index = lookalike.indexView();
  const rows = new Int32Array(total * k).fill(-1);
  const scores = new Float32Array(total * k).fill(Number.NaN);
  for (let q = 0; q < total; q++) {
    // As a photo search does (Lookalike.searchByImage).
    const hits = await index.query(space, queries.subarray(q * space.dim, (q + 1) * space.dim), { k, search: 'ann', candidates: PHOTO_ANN_CANDIDATES });
    hits.forEach((h, j) => { rows[q * k + j] = index.rowOf(h.id); scores[q * k + j] = h.score; });
  }
  return { k, rows, scores };
}
