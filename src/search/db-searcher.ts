/**
 * Search answered by the database: pgvector's HNSW over the normalised max-pooled vectors,
 * with top-k, threshold, filters and words in SQL. The store holds one space only,
 * backbone:max.
 */
import type { Store } from '../store/types.js';
import { LookalikeError } from '../errors.js';
import type { Hit } from './kernel.js';
import type { ItemTable } from './items.js';
import type { EmbeddingSpace } from './space.js';
import type { SpaceVectors } from './vectors.js';
import type { SearchRequest, Searcher } from './searcher.js';

export class DbSearcher implements Searcher {
  readonly method = 'db';

  constructor(private readonly space: EmbeddingSpace, private readonly store: Store, private readonly table: ItemTable, private readonly vectors: SpaceVectors) {}

  /**
   * Ids the database has but the item table does not yet (a replica a moment behind) are
   * left out. What the store can do is asked at each search: a refresh may change it.
   */
  async search(query: Float32Array, request: SearchRequest): Promise<Hit[]> {
    if (!this.store.searchVectors || !this.store.canSearch) {
      throw new LookalikeError('BAD_OPTION', { message: 'search "db" (answered by the database) needs an index in PostgreSQL with the pgvector extension; this one is not: search "exact" or "ann".' });
    }
    if (this.space.id !== 'backbone:max') throw new LookalikeError('BAD_OPTION', { message: `search "db" searches the backbone's max-pooled vectors only, not ${this.space.id}: ask for pooling "max" (and no head mode), or search "exact" or "ann".` });
    const hits = await this.store.searchVectors(query, { k: request.k, threshold: request.threshold, filters: request.filters, excludeId: request.excludeId, text: request.text?.terms });
    return hits.flatMap((h) => {
      const row = this.table.rowIfAny(h.id);
      return row === undefined ? [] : [{ row, score: h.score }];
    });
  }

  vectorOf(row: number): Promise<Float32Array> {
    return Promise.resolve(this.vectors.row(this.space, row));
  }
}
