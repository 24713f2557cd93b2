/**
 * Exact search: every eligible row of the space's matrix scored against the query. Large
 * catalogs are scored by onnxruntime's GEMM (search/kernel.ts topKAsync), several times
 * faster than the JavaScript loop.
 */
import { topK, topKAsync, type Hit } from './kernel.js';
import type { ItemTable } from './items.js';
import type { EmbeddingSpace } from './space.js';
import type { SpaceVectors } from './vectors.js';
import { rowOptions, type SearchRequest, type Searcher } from './searcher.js';

export class ExactSearcher implements Searcher {
  readonly method = 'exact';

  constructor(private readonly space: EmbeddingSpace, private readonly table: ItemTable, private readonly vectors: SpaceVectors) {}

  search(query: Float32Array, request: SearchRequest): Promise<Hit[]> {
    const { data, dim } = this.vectors.matrix(this.space);
    return topKAsync(data, dim, query, rowOptions(this.table, request));
  }

  /** As search, in the JavaScript loop, without waiting (bench). */
  searchNow(query: Float32Array, request: SearchRequest): Hit[] {
    const { data, dim } = this.vectors.matrix(this.space);
    return topK(data, dim, query, rowOptions(this.table, request));
  }

  vectorOf(row: number): Promise<Float32Array> {
    return Promise.resolve(this.vectors.row(this.space, row));
  }
}
