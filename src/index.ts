/**
 * Lookalike as a library: `import { Lookalike, buildIndex } from 'lookalike'`.
 *
 * Everything a Node service needs is named here and nowhere deeper: build or update an
 * index from a catalog folder, open it, search it by photo or by item, and tell errors
 * apart by their code. Other modules of the package are internal and may change.
 */
export {
  ACCEPTED_FORMATS, Lookalike, POOLINGS, prepareModel,
  type AnnStatus, type CheckedPhoto, type DuplicateGroupReport, type DuplicatesReport, type Example, type Freshness, type IndexView, type Look,
  type PhotoOptions, type PreparedModel, type QueryOptions, type RecommendOptions, type SearchResponse, type SearchStatus, type StoredMap, type TunedDefaults,
} from './lookalike.js';
export { RECOMMEND_STRATEGIES, type RecommendStrategy } from './search/recommend.js';
export { TEXT_MODES, type TextMode } from './search/text.js';
export { buildIndex, type BuildOptions, type BuildReport, type IndexProgress } from './indexing/build.js';
export { ERRORS, LookalikeError, isLookalikeError, type ErrorCode, type ErrorSpec } from './errors.js';
export {
  DEFAULT_K, DEFAULT_MODE, DEFAULT_THRESHOLD, ENV, FASHION_LABELS, INDEX_BATCH_SIZE, INDEX_FILES, MAX_K, MAX_K_HTTP, MAX_PIXELS,
  SEARCH_MODES, type SearchMode,
} from './defaults.js';
export type { FindOptions, SearchHit, SearchMethod, SearchOptions, SearchSetting, SpaceMatrix, TextHits } from './search/engine.js';
export type { AnnMeta, SyncReport } from './search/ann.js';
export type { Variant } from './search/variants.js';
export type { ImageSource } from './image/prepare.js';
export type { CatalogPhoto } from './image/catalog-photo.js';
export type { Localisation, ProposedRegion, Region } from './photo/localise.js';
export type { Arithmetic } from './model/embedder.js';
export type { Filters } from './search/filters.js';
export type { EmbeddingSpace, RawVectors } from './search/space.js';
export type { EmbeddingSettings, Pooling, ResizeMode } from './model/registry.js';
export type { IndexManifest, StoredItem } from './store/types.js';
export type { Catalog, CatalogItem, CatalogProblem, CatalogProblemKind } from './catalog/types.js';
export type { FetchOptions, Resolver } from './image/fetch.js';
export { checkRegion, parseCrop, type CropBox } from './validate.js';
export { cacheDir } from './paths.js';
export { listCache, pruneCache, type CacheEntry, type CacheListing, type PruneOptions, type PruneReport } from './model/cache.js';
