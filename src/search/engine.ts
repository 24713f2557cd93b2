/**
 * The in-memory search engine over one index: items with their metadata, and per
 * embedding space a contiguous normalised matrix of the embedded items.
 */
import type { Store, StoredItem, VectorKind, VectorMatrix } from '../store/types.js';
import { LookalikeError } from '../errors.js';
import { checkK, checkThreshold } from '../validate.js';
import { topK, topKAsync, type Hit, type TopKOptions } from './kernel.js';
import { filterMask, type Filters } from './filters.js';
import type { EmbeddingSpace, RawVectors } from './space.js';

export interface SearchOptions {
  k?: number;
  threshold?: number;
  filters?: Filters;
}

export interface SearchHit {
  id: string;
  rank: number;
  score: number;
  metadata: Record<string, string>;
  image: string;
}

export interface SpaceMatrix { space: EmbeddingSpace; data: Float32Array; dim: number }

export class SearchEngine {
  /** Embedded items, in matrix row order. */
  readonly items: StoredItem[];
  readonly columns: string[];
  private readonly rowById = new Map<string, number>();
  private readonly metadata: Array<Record<string, string>>;
  private raw?: RawVectors;
  private readonly spaces = new Map<string, SpaceMatrix>();

  constructor(private readonly store: Store, columns: string[]) {
    const all = new Map(store.listItems().map((i) => [i.id, i]));
    const { ids } = store.loadMatrix('colour'); // smallest matrix: gives the row order cheaply
    this.items = ids.map((id) => all.get(id)!).filter(Boolean);
    this.items.forEach((item, row) => this.rowById.set(item.id, row));
    this.columns = columns;
    this.metadata = this.items.map((i) => i.metadata);
  }

  get size(): number {
    return this.items.length;
  }

  rowOf(id: string): number {
    const row = this.rowById.get(id);
    if (row === undefined) throw new LookalikeError('ITEM_NOT_FOUND', { id });
    return row;
  }

  has(id: string): boolean {
    return this.rowById.has(id);
  }

  /**
   * Raw stored vectors of every embedded item. Each kind loads on first use only (256 MB
   * per pooling for the dev catalog), so a server searching max-pooled vectors never holds
   * the average-pooled ones.
   */
  rawVectors(): RawVectors {
    if (!this.raw) {
      const store = this.store;
      const loaded: Partial<Record<VectorKind, VectorMatrix>> = {};
      const load = (kind: VectorKind) => (loaded[kind] ??= store.loadMatrix(kind));
      const n = this.items.length;
      this.raw = {
        n,
        get max() { return load('max').data; },
        get avg() { return load('avg').data; },
        get colour() { return load('colour').data; },
        get dim() { return load('max').dim; },
        get colourDim() { return load('colour').dim; },
      };
    }
    return this.raw;
  }

  /** The catalog's matrix in a space, computed once per space. */
  matrix(space: EmbeddingSpace): SpaceMatrix {
    let m = this.spaces.get(space.id);
    if (!m) {
      m = { space, data: space.embed(this.rawVectors()), dim: space.dim };
      this.spaces.set(space.id, m);
    }
    return m;
  }

  /** Drops cached matrices (after the space definitions change, e.g. a new head). */
  forgetSpaces(): void {
    this.spaces.clear();
  }

  /** Searches with a query vector already in `space` (normalised). */
  search(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string } = {}): SearchHit[] {
    const { data, dim } = this.matrix(space);
    return this.toResults(topK(data, dim, query, this.topKOptions(options)));
  }

  /** Same as search; large catalogs are scored by onnxruntime (several times faster). */
  async searchAsync(space: EmbeddingSpace, query: Float32Array, options: SearchOptions & { excludeId?: string } = {}): Promise<SearchHit[]> {
    const { data, dim } = this.matrix(space);
    return this.toResults(await topKAsync(data, dim, query, this.topKOptions(options)));
  }

  private topKOptions(options: SearchOptions & { excludeId?: string }): TopKOptions {
    return {
      k: checkK(options.k ?? 5),
      threshold: checkThreshold(options.threshold),
      mask: filterMask(this.metadata, options.filters, this.columns),
      exclude: options.excludeId !== undefined ? this.rowById.get(options.excludeId) : undefined,
    };
  }

  private toResults(hits: Hit[]): SearchHit[] {
    return hits.map((h, i) => {
      const item = this.items[h.row];
      return { id: item.id, rank: i + 1, score: h.score, metadata: item.metadata, image: item.image };
    });
  }

  /** The stored vector of a catalog item in `space`. */
  vectorOf(space: EmbeddingSpace, id: string): Float32Array {
    const row = this.rowOf(id);
    const { data, dim } = this.matrix(space);
    return data.subarray(row * dim, (row + 1) * dim);
  }

  /** Value counts per column, over embedded items, optionally under filters. */
  facets(fields: string[] = this.columns, filters?: Filters): Record<string, Array<{ value: string; count: number }>> {
    const mask = filterMask(this.metadata, filters, this.columns);
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
    const mask = filterMask(this.metadata, filters, this.columns);
    const matching = mask ? this.items.filter((_, r) => mask[r]) : this.items;
    return { total: matching.length, items: matching.slice(offset, offset + limit) };
  }
}
