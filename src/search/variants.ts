/**
 * Colour variants: products a catalog says are one style (a column such as style_id,
 * parent or Google Merchant's item_group_id). A result list grouped by style shows each
 * style once, at its best variant's place, with the other variants folded under it, so
 * ten colours of one T-shirt do not fill the list.
 */

export interface Variant { id: string; score: number; metadata: Record<string, string> }

/**
 * Keeps, in order, the first hit of each style, at most `k` of them; later hits of a kept
 * style are listed in its `variants`. A hit without a style is a style of its own. With
 * `queryStyle` (more like a catalog item), hits of the item's own style are left out and
 * listed in `ofQuery`.
 */
export function foldVariants<H extends { id: string; score: number; metadata: Record<string, string> }>(
  hits: H[], k: number, styleOf: (hit: H) => string | undefined, queryStyle?: string,
): { kept: Array<H & { variants?: Variant[] }>; ofQuery: Variant[] } {
  const kept: Array<H & { variants?: Variant[] }> = [];
  const byStyle = new Map<string, H & { variants?: Variant[] }>();
  const ofQuery: Variant[] = [];
  for (const hit of hits) {
    const style = styleOf(hit) || undefined;
    const variant = { id: hit.id, score: hit.score, metadata: hit.metadata };
    if (style !== undefined && style === queryStyle) { ofQuery.push(variant); continue; }
    const first = style === undefined ? undefined : byStyle.get(style);
    if (first) { (first.variants ??= []).push(variant); continue; }
    if (kept.length >= k) continue;
    const entry = { ...hit };
    kept.push(entry);
    if (style !== undefined) byStyle.set(style, entry);
  }
  return { kept, ofQuery };
}
