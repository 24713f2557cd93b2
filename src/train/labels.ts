/**
 * Turning a catalog's label columns into classification targets the head can learn from,
 * without trusting them: real catalogs have empty cells, "NA", stray spaces, different
 * capitalisation, singular/plural variants and the odd typo, columns with one value or
 * free text. Every decision is reported, never silent.
 *
 * Merging is deliberately conservative. Values that differ only in case, spacing,
 * punctuation or a plural "s" are one class. A value is taken for a typo of another only
 * when it is rare (≤ 5 items, ≤ 2% of the other) and one insertion, deletion or
 * transposition away: a substitution is never merged, because real classes differ by one
 * (Shirts/Skirts, Kurtas/Kurtis, Leggings/Jeggings in the dev catalog).
 */

import { HEAD_LABELS } from '../defaults.js';
import type { TaskKind } from '../head/head.js';

export type { TaskKind };

export interface LabelTask {
  column: string;
  /** 'colour' tasks shape the colour part of the embedding, the rest the style part. */
  kind: TaskKind;
  /** Class names (the most frequent spelling of each). */
  classes: string[];
  /** Per row, the class index, or -1 (empty, unknown, or a class too rare to learn). */
  codes: Int32Array;
  /** Training rows per class. */
  counts: Int32Array;
  merged: Array<{ from: string; to: string; items: number }>;
  /** Values with too few training items to learn, left out of this task's loss. */
  rare: Array<{ value: string; items: number }>;
  /** Rows without a usable value. */
  missing: number;
}

export interface SkippedColumn { column: string; reason: string }

export interface LabelPlan { tasks: LabelTask[]; skipped: SkippedColumn[] }

export interface LabelOptions {
  /** A class needs this many training items to be learnt. Default 3. */
  minCount?: number;
}

/**
 * The label columns used when none are named, in order of importance (the first is the
 * main one). subCategory and masterCategory come last, as coarse guides: an item whose
 * article type is too rare to learn still learns where it belongs (on a 1,000-item sample
 * without them, held-out masterCategory precision@5 fell from 0.957 to 0.908; with them
 * 0.947, and article type rose further).
 */
export const DEFAULT_LABELS: readonly string[] = HEAD_LABELS;

const MISSING = new Set(['', 'na', 'n/a', 'nan', 'null', 'none', 'nil', '-', '--', '?', 'unknown', 'undefined']);

export function isColourColumn(column: string): boolean {
  return /colou?r/i.test(column);
}

/** Same class, different spelling: case, spacing, punctuation, a trailing plural "s". */
function classKey(value: string): string {
  const k = value.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
  return k.length > 3 && k.endsWith('s') ? k.slice(0, -1) : k;
}

/** Optimal string alignment distance, 0/1/2+ (enough to detect one edit). */
export function editKind(a: string, b: string): 'same' | 'indel' | 'transposition' | 'substitution' | 'far' {
  if (a === b) return 'same';
  if (Math.abs(a.length - b.length) > 1) return 'far';
  if (a.length === b.length) {
    const diff: number[] = [];
    for (let i = 0; i < a.length && diff.length <= 2; i++) if (a[i] !== b[i]) diff.push(i);
    if (diff.length === 1) return 'substitution';
    if (diff.length === 2 && diff[1] === diff[0] + 1 && a[diff[0]] === b[diff[1]] && a[diff[1]] === b[diff[0]]) return 'transposition';
    return 'far';
  }
  const [s, l] = a.length < b.length ? [a, b] : [b, a];
  let i = 0;
  while (i < s.length && s[i] === l[i]) i++;
  return s.slice(i) === l.slice(i + 1) ? 'indel' : 'far';
}

/**
 * Targets for each named column. `isTrain[row]` marks the rows the head learns from; class
 * counts and the rare-class rule use those rows only.
 */
export function planLabels(metadata: Array<Record<string, string>>, columns: string[], isTrain: Uint8Array, options: LabelOptions = {}): LabelPlan {
  const minCount = options.minCount ?? 3;
  const tasks: LabelTask[] = [];
  const skipped: SkippedColumn[] = [];
  for (const column of columns) {
    const result = planColumn(metadata, column, isTrain, minCount);
    if ('reason' in result) skipped.push(result);
    else tasks.push(result);
  }
  return { tasks, skipped };
}

function planColumn(metadata: Array<Record<string, string>>, column: string, isTrain: Uint8Array, minCount: number): LabelTask | SkippedColumn {
  const n = metadata.length;
  // 1. Spelling groups: key -> spelling -> rows.
  const groups = new Map<string, { spellings: Map<string, number>; total: number; train: number }>();
  const keys: Array<string | undefined> = new Array(n);
  let present = 0;
  for (let r = 0; r < n; r++) {
    const raw = (metadata[r][column] ?? '').replace(/\s+/g, ' ').trim();
    if (MISSING.has(raw.toLowerCase())) continue;
    const key = classKey(raw);
    if (!key) continue;
    keys[r] = key;
    present++;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { spellings: new Map(), total: 0, train: 0 }));
    g.spellings.set(raw, (g.spellings.get(raw) ?? 0) + 1);
    g.total++;
    if (isTrain[r]) g.train++;
  }
  if (!present) return { column, reason: 'every cell is empty' };
  const merged: LabelTask['merged'] = [];
  const canonical = new Map<string, string>();
  for (const [key, g] of groups) {
    const spellings = [...g.spellings].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    canonical.set(key, spellings[0][0]);
    for (const [s, count] of spellings.slice(1)) merged.push({ from: s, to: spellings[0][0], items: count });
  }

  // 2. Typos: a rare group one insertion/deletion/transposition from a much larger one.
  const byCount = [...groups].sort((a, b) => b[1].total - a[1].total);
  const target = new Map<string, string>();
  for (const [key, g] of byCount) {
    if (g.total > 5) continue;
    for (const [other, og] of byCount) {
      if (other === key || og.total < g.total * 50 || target.has(other)) continue;
      const kind = editKind(key, other);
      if (kind === 'indel' || kind === 'transposition') {
        target.set(key, other);
        merged.push({ from: canonical.get(key)!, to: canonical.get(other)!, items: g.total });
        break;
      }
    }
  }
  const finalKey = (key: string) => target.get(key) ?? key;

  // 3. Classes with enough training items; the others are "rare" and not learnt.
  const trainCounts = new Map<string, number>();
  for (const [key, g] of groups) trainCounts.set(finalKey(key), (trainCounts.get(finalKey(key)) ?? 0) + g.train);
  const totals = new Map<string, number>();
  for (const [key, g] of groups) totals.set(finalKey(key), (totals.get(finalKey(key)) ?? 0) + g.total);
  const classKeys = [...trainCounts].filter(([, c]) => c >= minCount).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k]) => k);
  const rare = [...trainCounts].filter(([, c]) => c < minCount).map(([k]) => ({ value: canonical.get(k)!, items: totals.get(k)! }))
    .sort((a, b) => b.items - a.items || a.value.localeCompare(b.value));

  const distinct = trainCounts.size;
  if (distinct > 0.5 * present && distinct > 50) {
    return { column, reason: `${distinct} different values in ${present} items: looks like free text or an id, not a category` };
  }
  if (classKeys.length < 2) {
    const only = classKeys.length ? `one value ("${canonical.get(classKeys[0])}")` : `no value with ${minCount}+ training items`;
    return { column, reason: `${only}: nothing to tell apart` };
  }
  const index = new Map(classKeys.map((k, i) => [k, i]));
  const codes = new Int32Array(n).fill(-1);
  const counts = new Int32Array(classKeys.length);
  let missing = 0;
  for (let r = 0; r < n; r++) {
    const key = keys[r];
    const c = key === undefined ? undefined : index.get(finalKey(key));
    if (c === undefined) { missing++; continue; }
    codes[r] = c;
    if (isTrain[r]) counts[c]++;
  }
  return {
    column,
    kind: isColourColumn(column) ? 'colour' : 'style',
    classes: classKeys.map((k) => canonical.get(k)!),
    codes,
    counts,
    merged,
    rare,
    missing,
  };
}

/**
 * Per-class loss weights against imbalance: inverse square root of the class frequency
 * (the full inverse over-fits a dozen examples of a rare class; none lets Tshirts drown
 * everything), scaled so that the mean weight over training items is 1.
 */
export function classWeights(counts: Int32Array, power = 0.5): Float32Array {
  const w = new Float32Array(counts.length);
  let total = 0, weighted = 0;
  for (let c = 0; c < counts.length; c++) {
    w[c] = counts[c] > 0 ? counts[c] ** -power : 0;
    total += counts[c];
    weighted += counts[c] * w[c];
  }
  const norm = weighted > 0 ? total / weighted : 0;
  for (let c = 0; c < counts.length; c++) w[c] *= norm;
  return w;
}
