/** What a catalog reader returns; shared by both layouts' readers (index.ts, image-folder.ts, styles-csv.ts). */

export interface CatalogItem {
  id: string;
  /** absolute path, or an http(s) URL (catalogs whose images are not on this disk) */
  imagePath: string;
  metadata: Record<string, string>;
  /** Further photos of the product (catalog/photos.ts); expanded into rows of their own by readCatalog. */
  photos?: PhotoSource[];
}

export type CatalogProblemKind = 'malformed-row' | 'empty-id' | 'duplicate-id' | 'missing-image' | 'unlisted-image' | 'url-with-credentials';

export interface CatalogProblem {
  kind: CatalogProblemKind;
  id?: string;
  /** 1-based line in styles.csv */
  line?: number;
  file?: string;
  detail: string;
}

export interface Catalog {
  /** absolute */
  root: string;
  kind: 'styles-csv' | 'image-folder';
  /** metadata columns in CSV order, without "id" (image-folder: ['folder']) */
  columns: string[];
  /** in CSV order, then images whose row is malformed, by id (image-folder: sorted by id) */
  items: CatalogItem[];
  problems: CatalogProblem[];
  /** With several photos per product (catalog/photos.ts): `items` are photos; how many products and photos. */
  products?: number;
  photos?: number;
}

/** One further photo of a product, before it becomes a row. */
export interface PhotoSource {
  /** Absolute path or http(s) URL. */
  imagePath: string;
  /** The file relative to the catalog folder, or the URL: names the photo's row. */
  key: string;
  view?: string;
  /** For `<id>_<n>.jpg`: `<id>_<n>`, which stays a product of its own when styles.csv lists it. */
  ownId?: string;
}

/** The photos a catalog lists in images.csv (id -> photos in file order), and what was wrong. */
export interface PhotoList {
  byId: Map<string, PhotoSource[]>;
  problems: CatalogProblem[];
}
