/**
 * A stable split of items into held-out queries and the rest, by a hash of the id: the
 * same id always lands on the same side, whatever the catalog's order or size, so
 * training (train/) and evaluation (lab/eval/) agree on which items were never trained on.
 */

/** FNV-1a 32-bit hash of a string, mapped to [0, 1). */
export function idHashUnit(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche so that consecutive ids spread evenly.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x1_0000_0000;
}

/** True when the item is among the held-out share `fraction` (0..1). */
export function isHeldOut(id: string, fraction: number): boolean {
  return idHashUnit(id) < fraction;
}
