/**
 * The item table of one index: the embedded items in matrix row order, their metadata,
 * the row of each id, and what is asked of them without any vector (facets, lists, the
 * row masks of filters). Every space's matrix and every searcher use these rows.
 */
import type { Store, StoredItem } from '../store/types.js';
import { LookalikeError } from '../errors.js';
import { filterMask, type Filters } from './filters.js';
import { ProductPhotos, productMetadata, type MatchedPhoto } from './products.js';
import type { Hit } from './kernel.js';

export interface SearchHit {
  id: string;
  rank: number;
  score: number;
  metadata: Record<string, string>;
  image: string;
  /** With dedupe: the near-duplicates of this product that the list left out, best first. */
  duplicates?: string[];
  /** Grouped by style: the other variants of this product's style, best first. */
  variants?: Array<{ id: string; score: number; metadata: Record<string, string> }>;
  /** A product with several photos (search/products.ts): the one that matched. */
  photo?: MatchedPhoto;
}

/** Filter masks remembered (ItemTable.maskOf). */
const MASKS_KEPT = 32;

export class ItemTable {
  /** Embedded items, in matrix row order. */
  readonly items: readonly StoredItem[];
  readonly columns: string[];
  /** Each row's metadata (items[row].metadata). */
  readonly metadata: Array<Record<string, string>>;
  private readonly rowById = new Map<string, number>();
  private readonly masks = new Map<string, Uint8Array | undefined>();

  constructor(items: readonly StoredItem[], columns: string[]) {
    this.items = items;
    this.items.forEach((item, row) => this.rowById.set(item.id, row));
    this.columns = columns;
    this.metadata = this.items.map((i) => i.metadata);
  }

  /** The store's embedded items, in the row order of its matrices. */
  static fromStore(store: Store, columns: string[]): ItemTable {
    const all = new Map(store.listItems().map((i) => [i.id, i]));
    const { ids } = store.loadMatrix('colour'); // smallest matrix: gives the row order cheaply
    return new ItemTable(ids.map((id) => all.get(id)!).filter(Boolean), columns);
  }

  get size(): number {
    return this.items.length;
  }

  private productPhotos?: ProductPhotos;

  /** Products and their photos' rows (search/products.ts): a row is a photo, a product may have several. */
  get photos(): ProductPhotos {
    return (this.productPhotos ??= new ProductPhotos(this.items));
  }

  /** A filter mask narrowed to one row per product (its first photo), when products have several. */
  private productMask(mask: Uint8Array | undefined): Uint8Array | undefined {
    if (!this.photos.multi) return mask;
    const lead = this.photos.leadRows;
    return mask ? mask.map((m, r) => m & lead[r]) : lead;
  }

  rowOf(id: string): number {
    const row = this.rowById.get(id);
    if (row === undefined) throw new LookalikeError('ITEM_NOT_FOUND', { id });
    return row;
  }

  /** The row of an id, undefined for an id the table does not hold. */
  rowIfAny(id: string): number | undefined {
    return this.rowById.get(id);
  }

  has(id: string): boolean {
    return this.rowById.has(id);
  }

  /** The ids in row order. */
  ids(): string[] {
    return this.items.map((i) => i.id);
  }

  /**
   * Row mask of a filter, remembered for the last few filters: building it reads every
   * item's metadata (milliseconds at 30k items), more than an ANN search itself costs.
   * Shared: callers copy it before changing it.
   */
  maskOf(filters: Filters | undefined): Uint8Array | undefined {
    if (!filters || !Object.values(filters).some((v) => v.length)) return undefined;
    const key = JSON.stringify(Object.entries(filters).sort(([a], [b]) => a.localeCompare(b)));
    if (this.masks.has(key)) return this.masks.get(key);
    const mask = filterMask(this.metadata, filters, this.columns);
    if (this.masks.size >= MASKS_KEPT) this.masks.delete(this.masks.keys().next().value as string);
    this.masks.set(key, mask);
    return mask;
  }

  /** The rows a search may return: those passing the filters and, when given, `alsoIn`'s rows (undefined: every row). */
  eligibleRows(filters: Filters | undefined, alsoIn?: Uint8Array): Uint8Array | undefined {
    let mask = this.maskOf(filters);
    if (alsoIn) {
      mask = mask ? Uint8Array.from(mask) : new Uint8Array(this.size).fill(1);
      for (let r = 0; r < mask.length; r++) mask[r] &= alsoIn[r];
    }
    return mask;
  }

  /** Rows and scores as a ranked list of items. */
  results(hits: Hit[]): SearchHit[] {
    return hits.map((h, i) => {
      const item = this.items[h.row];
      return { id: item.id, rank: i + 1, score: h.score, metadata: item.metadata, image: item.image };
    });
  }

  /** Value counts per column, optionally under filters. */
  facets(fields: string[] = this.columns, filters?: Filters): Record<string, Array<{ value: string; count: number }>> {
    const mask = this.productMask(filterMask(this.metadata, filters, this.columns));
    const out: Record<string, Array<{ value: string; count: number }>> = {};
    for (const field of fields) {
      const counts = new Map<string, number>();
      this.items.forEach((item, row) => {
        if (mask && !mask[row]) return;
        const v = item.metadata[field] ?? '';
        if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
      });
      out[field] = [...counts].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
    }
    return out;
  }

  /** Items passing the filters, paginated, in catalog order. */
  list(filters: Filters | undefined, offset: number, limit: number): { total: number; items: StoredItem[] } {
    const mask = this.productMask(filterMask(this.metadata, filters, this.columns));
    const matching = mask ? this.items.filter((_, r) => mask[r]) : this.items;
    const page = matching.slice(offset, offset + limit);
    return { total: matching.length, items: this.photos.multi ? page.map((i) => ({ ...i, metadata: productMetadata(i.metadata) })) : page };
  }
}
