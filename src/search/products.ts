/**
 * Several photos per product, at search time. Each photo is a row of its own
 * (catalog/photos.ts); a search ranks photo rows and folds them into products here: a
 * product's score is the best of its photos' scores, and its result says which photo that
 * was. Max is the aggregate because a shopper's photo shows one view: a back view should
 * be found by the product's back photo however unlike its front it is (an average or sum
 * would dilute exactly that match); docs/products.md measures it against the first photo alone.
 */
import { PHOTO_KEYS } from '../catalog/photos.js';
import type { StoredItem } from '../store/types.js';

/** Which of a product's photos a result matched (`SearchHit.photo`). */
export interface MatchedPhoto {
  /** Its place among the product's photos, 0 being the first (the packshot). */
  index: number;
  /** The photo's file or URL, as stored. */
  image: string;
  /** Its view or role, when the catalog names it. */
  view?: string;
  /** How many photos the product has. */
  of: number;
}

/** A product's photos, in order. */
export interface ProductPhotoRows {
  id: string;
  /** Engine rows, by photo index. */
  rows: number[];
}

const PHOTO_KEY_NAMES = new Set<string>(Object.values(PHOTO_KEYS));

/** Metadata as the catalog gave it: without the photo keys. */
export function productMetadata(metadata: Record<string, string>): Record<string, string> {
  if (!Object.keys(metadata).some((k) => PHOTO_KEY_NAMES.has(k))) return metadata;
  return Object.fromEntries(Object.entries(metadata).filter(([k]) => !PHOTO_KEY_NAMES.has(k)));
}

/** The product a stored row is a photo of. */
export function productOf(item: Pick<StoredItem, 'id' | 'metadata'>): string {
  return item.metadata[PHOTO_KEYS.product] ?? item.id;
}

/** Products and their photos over an engine's rows (rows in matrix order). */
export class ProductPhotos {
  /** Product id -> its photos' rows. */
  private readonly byProduct = new Map<string, ProductPhotoRows>();
  /** Per row, its product's entry. */
  private readonly entryOfRow: ProductPhotoRows[];
  /** Whether any product has more than one photo row. */
  readonly multi: boolean;
  /** Rows that stand for their product in product-level views: its first photo (or its first embedded one). */
  readonly leadRows: Uint8Array;

  constructor(private readonly items: readonly StoredItem[]) {
    const placed: Array<{ entry: ProductPhotoRows; index: number[] }> = [];
    const index = new Map<string, { entry: ProductPhotoRows; index: number[] }>();
    this.entryOfRow = items.map((item, row) => {
      const id = productOf(item);
      let p = index.get(id);
      if (!p) { p = { entry: { id, rows: [] }, index: [] }; index.set(id, p); placed.push(p); this.byProduct.set(id, p.entry); }
      p.entry.rows.push(row);
      p.index.push(Number(item.metadata[PHOTO_KEYS.index] ?? 0));
      return p.entry;
    });
    let multi = false;
    for (const p of placed) {
      if (p.entry.rows.length > 1) {
        multi = true;
        const order = p.entry.rows.map((r, i) => ({ r, at: p.index[i] })).sort((a, b) => a.at - b.at || a.r - b.r);
        p.entry.rows = order.map((o) => o.r);
      }
    }
    this.multi = multi;
    this.leadRows = new Uint8Array(items.length);
    for (const p of placed) this.leadRows[p.entry.rows[0]] = 1;
  }

  /** How many products. */
  get products(): number {
    return this.byProduct.size;
  }

  /** A product's photo rows, or undefined for an unknown id. */
  photos(productId: string): ProductPhotoRows | undefined {
    return this.byProduct.get(productId);
  }

  /** The product of a row. */
  productOfRow(row: number): ProductPhotoRows {
    return this.entryOfRow[row];
  }

  /** The stored row (its id) of a product's photo `index`, or undefined. */
  photoId(productId: string, index: number): string | undefined {
    const row = this.byProduct.get(productId)?.rows[index];
    return row === undefined ? undefined : this.items[row].id;
  }

  /** The matched photo of a row (for a product with several photos). */
  matched(row: number): MatchedPhoto {
    const entry = this.entryOfRow[row];
    const item = this.items[row];
    const view = item.metadata[PHOTO_KEYS.view];
    return { index: entry.rows.indexOf(row), image: item.image, ...(view && { view }), of: entry.rows.length };
  }

  /**
   * Photo hits, best first, as product hits: each product once, at its best photo's place
   * and score, its id, metadata and image the product's (its first photo's), `photo` the one
   * that matched. Products with one photo come back unchanged. `excluded`: products never
   * returned (the query's own, examples).
   */
  fold<H extends { id: string; score: number; metadata: Record<string, string>; image: string }>(hits: readonly H[], rowOf: (id: string) => number | undefined, excluded?: ReadonlySet<string>): Array<H & { photo?: MatchedPhoto }> {
    const seen = new Set<string>();
    const out: Array<H & { photo?: MatchedPhoto }> = [];
    for (const hit of hits) {
      const row = rowOf(hit.id);
      const entry = row === undefined ? undefined : this.entryOfRow[row];
      const product = entry?.id ?? hit.id;
      if (seen.has(product) || excluded?.has(product)) continue;
      seen.add(product);
      if (!entry || entry.rows.length === 1 && entry.id === hit.id) { out.push(hit); continue; }
      const first = this.items[entry.rows[0]];
      out.push({ ...hit, id: product, metadata: productMetadata(first.metadata), image: first.image, photo: this.matched(row!) });
    }
    return out;
  }
}

/**
 * The best `want` products of a photo-row search `fetch(rows)`: fetches more rows until
 * `want` products are found or the rows run out. The first fetch asks for as many rows per
 * product as the index holds on average, plus a margin.
 */
export async function fetchProducts<H extends { id: string; score: number; metadata: Record<string, string>; image: string }>(
  photos: ProductPhotos, rowOf: (id: string) => number | undefined, totalRows: number, want: number,
  fetch: (rows: number) => Promise<H[]>, excluded?: ReadonlySet<string>,
): Promise<Array<H & { photo?: MatchedPhoto }>> {
  const perProduct = totalRows / Math.max(1, photos.products);
  for (let rows = Math.min(totalRows, Math.ceil(want * perProduct) + 10); ; rows = Math.min(totalRows, rows * 4)) {
    const hits = await fetch(rows);
    const products = photos.fold(hits, rowOf, excluded);
    if (products.length >= want || hits.length < rows || rows >= totalRows) return products.slice(0, want);
  }
}

/**
 * Product-level views (leave-one-out evaluation, duplicates, recommendations for every
 * product) over an index with several photos per product: each product counted once, by its
 * first photo's row, so that a product's own other photos are never its neighbours.
 * `rows`: the engine rows kept; `data`: their rows of `matrix`, contiguous.
 */
export function leadRowsOf(photos: ProductPhotos, matrix: Float32Array, dim: number): { rows: Int32Array; data: Float32Array } {
  const rows: number[] = [];
  photos.leadRows.forEach((lead, r) => { if (lead) rows.push(r); });
  const data = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => data.set(matrix.subarray(r * dim, (r + 1) * dim), i * dim));
  return { rows: Int32Array.from(rows), data };
}

/** How many products and photos stored items hold (`lookalike info`); undefined with one photo per product. */
export function countProducts(items: ReadonlyArray<Pick<StoredItem, 'id' | 'metadata'>>): { products: number; photos: number } | undefined {
  const products = new Set(items.map(productOf)).size;
  return products === items.length ? undefined : { products, photos: items.length };
}
