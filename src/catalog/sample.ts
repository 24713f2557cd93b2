/**
 * Stratified samples: the same share of every class (articleType), so that a small
 * sample keeps the catalog's mix and rare classes do not vanish by chance. Selection is
 * by a stable hash of the id, so the same catalog always gives the same sample.
 */
import { idHashUnit } from './split.js';

/**
 * About `size` ids, allocated to classes in proportion to their counts (largest
 * remainders), each class's ids taken in hash order. Items without a value form their
 * own stratum.
 */
export function stratifiedSample(items: Array<{ id: string; value: string }>, size: number): string[] {
  if (size >= items.length) return items.map((i) => i.id);
  const strata = new Map<string, string[]>();
  for (const item of items) {
    const list = strata.get(item.value);
    if (list) list.push(item.id); else strata.set(item.value, [item.id]);
  }
  const entries = [...strata.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  const quotas = entries.map(([, ids]) => (ids.length * size) / items.length);
  const take = quotas.map(Math.floor);
  let left = size - take.reduce((a, b) => a + b, 0);
  const byRemainder = quotas.map((q, i) => [q - Math.floor(q), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of byRemainder) {
    if (left <= 0) break;
    take[i]++;
    left--;
  }
  const out: string[] = [];
  entries.forEach(([, ids], i) => {
    const ordered = [...ids].sort((a, b) => idHashUnit(a) - idHashUnit(b) || a.localeCompare(b));
    out.push(...ordered.slice(0, take[i]));
  });
  return out;
}
