/**
 * Every default and every name Lookalike relies on, in one place: search defaults, the
 * fashion catalog's columns, queue and batch sizes, file names and environment variables.
 * The library, the CLI, the HTTP server and the web page all read them from here, so a
 * default changes in one line and the CLI's --help, the OpenAPI document and the page
 * agree.
 *
 * This module imports nothing and touches neither Node nor the DOM: the web page bundles it
 * too (web/src/api.ts).
 */

// --- Search ------------------------------------------------------------------------------

/**
 * Results per search when the caller names no k and the index has no tuned k
 * (`lookalike tune --apply` stores one; the library, CLI, API and page then use it).
 */
export const DEFAULT_K = 5;

/** The most results one search may ask for: the library's and the CLI's limit (k, neighbours). */
export const MAX_K = 1000;

/**
 * The most results one HTTP search may ask for: a page of results, well under MAX_K (the
 * CLI allows up to MAX_K, for exports). The API's schemas and /api/health's limits use it.
 */
export const MAX_K_HTTP = Math.min(200, MAX_K);

/**
 * Minimum cosine similarity when the caller names none and the index has no tuned one:
 * none, so a search always returns k results.
 */
export const DEFAULT_THRESHOLD: number | undefined = undefined;

/**
 * Notions of similarity of a trained head, from shape to colour (`lookalike train`; the
 * head weighs its style and colour parts by mode). Without a head the backbone is used.
 */
export const SEARCH_MODES = ['style', 'balanced', 'colour'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

/** The mode used when a search names none (a head may store another: train --default-mode). */
export const DEFAULT_MODE: SearchMode = 'balanced';

/**
 * Two catalog photos whose stored vectors (the backbone's, in the index's pooling) have at
 * least this cosine are near-duplicates (`lookalike duplicates`, searches with dedupe).
 * Measured on the dev catalog against its exact duplicate files (docs/products.md).
 */
export const DUPLICATE_THRESHOLD = 0.95;

/** Neighbours of each item looked at for near-duplicates (a group larger than this still forms, through chains). */
export const DUPLICATE_NEIGHBOURS = 10;

/**
 * Catalog columns that name a product's style, whose products are its colour (or size)
 * variants: the first of these a catalog has (any case) is what `group: 'style'` groups by.
 */
export const STYLE_ID_COLUMNS = ['style_id', 'styleId', 'style', 'parent_id', 'parentId', 'parent', 'item_group_id', 'group_id'] as const;

/** Items per page when browsing the catalog over HTTP, and the most a page may hold. */
export const PAGE_SIZE = 24;
export const MAX_PAGE_SIZE = 200;

// --- The fashion catalog's columns (Kaggle "Fashion Product Images" styles.csv) ----------

/**
 * The label columns quality is measured against, the main one first: `lookalike eval`
 * scores them (articleType defines a good neighbour), training reports them.
 */
export const FASHION_LABELS = ['articleType', 'subCategory', 'masterCategory', 'gender', 'baseColour', 'usage'] as const;

/**
 * The columns `lookalike train` learns by default. The order is the head's task order (the
 * first is the balanced main task), which the measured head figures were trained with.
 */
export const HEAD_LABELS = ['articleType', 'gender', 'baseColour', 'usage', 'subCategory', 'masterCategory'] as const;

/** Columns the page and GET /api/facets offer as filters, when the catalog has them. */
export const FACET_COLUMNS = ['gender', 'masterCategory', 'subCategory', 'articleType', 'baseColour', 'season', 'usage'] as const;

/** Columns drawn as category charts in evaluation reports, coarse to fine, then colour. */
export const CATEGORY_CHART_COLUMNS = ['masterCategory', 'subCategory', 'articleType', 'baseColour'] as const;

/** The column samples are stratified by (`lookalike index --sample`, `lookalike tune --sample`). */
export const SAMPLE_STRATA = 'articleType';

/** Columns the CLI prints beside each result (`query`, `similar`), when present. */
export const SHOWN_COLUMNS = ['articleType', 'baseColour', 'gender', 'productDisplayName'] as const;

// --- Work sizes ---------------------------------------------------------------------------

/** Images per inference batch when indexing (each batch is also one store transaction). */
export const INDEX_BATCH_SIZE = 16;

/**
 * The server's inference queue: image searches running at once (inference already uses
 * every core) and searches allowed to wait before the answer is 503 + Retry-After.
 */
export const QUEUE_CONCURRENCY = 1;
export const QUEUE_MAX_WAITING = 8;

/**
 * Fetching catalog images over HTTP(S) (catalogs with an image URL column): the whole
 * request's time-out, the largest body, extra tries after a transient failure (network,
 * time-out, 5xx, 429), and redirects followed.
 */
export const FETCH_DEFAULTS = { timeoutMs: 15_000, maxBytes: 10 * 1024 * 1024, retries: 2, maxRedirects: 5 };

/**
 * Indexing through a job queue (`lookalike index --queue`, `lookalike worker`): tries of a
 * batch before its items are recorded as failures; a worker's job lock, renewed every half
 * of it while it works, and how often workers look for batches whose worker died (so a
 * killed worker's batch moves to another within lock + check, under 30 s); the batches a
 * worker holds at once (two: one decodes while the other is in the network).
 */
export const WORKER_DEFAULTS = { attempts: 3, lockMs: 15_000, stalledCheckMs: 10_000, maxStalled: 5, concurrency: 2 };

/**
 * Running as a service: a replica more than `maxStalenessSeconds` behind its database
 * answers 503 on /api/health/ready (it still answers searches from memory); on SIGTERM,
 * readiness fails for `drainSeconds` while the server still takes requests (load balancers
 * notice and stop sending), then it stops accepting, lets requests in flight finish and
 * exits, forcibly after `shutdownSeconds` in all (Kubernetes kills at 30 s by default).
 */
export const SERVICE_DEFAULTS = { maxStalenessSeconds: 30, drainSeconds: 5, shutdownSeconds: 25 };

/** The largest upload the server accepts, in bytes. */
export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;

/** The largest image, in pixels, checked from the header before decoding. */
export const MAX_PIXELS = 40_000_000;

// --- Files and folders --------------------------------------------------------------------

/** Names of the files inside an index folder. */
export const INDEX_FILES = {
  /** The SQLite store: items, metadata, vectors, manifest. */
  database: 'index.sqlite',
  /** A trained head (`lookalike train`). */
  head: 'head.lkhead',
  /** The 2-D map for the page (`lookalike map`). */
  map: 'map.json',
  /** Shopper-photo views of training items, embedded once for `lookalike train` (train/views.ts). */
  views: 'train-views.lkviews',
  /** Derived, rebuildable files (flat vector matrices, the head's projections). */
  cache: 'cache',
} as const;

/** The index folder, under the current directory, when neither --index nor LOOKALIKE_INDEX says. */
export const DEFAULT_INDEX_DIR = '.lookalike';

/** The index's name inside a PostgreSQL store when --index does not name one. */
export const DEFAULT_STORE_INDEX = 'lookalike';

/**
 * How often a replica asks PostgreSQL for the data generation even when no notification came
 * (a notification is lost when the listening connection drops): the bound on how stale a
 * replica can be after a reconnect.
 */
export const STORE_POLL_MS = 1000;

/** Environment variables Lookalike reads. */
export const ENV = {
  /** Where converted models (ONNX) are kept (default: the user's cache folder, paths.ts cacheDir). */
  cache: 'LOOKALIKE_CACHE',
  /** The default index folder (or, with a store URL, the index's name in the database). */
  index: 'LOOKALIKE_INDEX',
  /** A shared store, postgres://USER@HOST:PORT/DATABASE, used where --store is not given. */
  store: 'LOOKALIKE_STORE',
  /** The job queue, redis://HOST:6379, used where --queue is not given. */
  queue: 'LOOKALIKE_QUEUE',
  /** Hosts a URL catalog may fetch from although they are private or local (comma-separated), used where --allow-host is not given. */
  allowHosts: 'LOOKALIKE_ALLOW_HOSTS',
  /** The dev catalog for the data suite and benchmarks. */
  dataset: 'LOOKALIKE_DATASET',
  /** The chromium the page's browser tests drive. */
  chromium: 'LOOKALIKE_CHROMIUM',
} as const;

/**
 * Shopper photos of training items embedded by default (`lookalike train --views`):
 * measured with `lookalike robustness` (docs/shopper-photos.md). Here, not in train/, so
 * the CLI's help names it without loading the trainer.
 */
export const DEFAULT_VIEWS = 3000;

/**
 * The image settings `lookalike tune` re-embeds a sample with by default: the reference
 * input (224x224 stretched), padding to a square instead, keeping the photos' 3:4 aspect
 * (168 wide x 224 high: no distortion, 25% fewer operations), and two smaller squares.
 * Sizes are width x height, as in `lookalike index --size`. Here, not in lab/tune/, so the
 * CLI's help names them without loading the lab.
 */
export const DEFAULT_IMAGE_SETTINGS: ReadonlyArray<{ width: number; height: number; resize: 'stretch' | 'pad' | 'crop' }> = [
  { width: 224, height: 224, resize: 'stretch' },
  { width: 224, height: 224, resize: 'pad' },
  { width: 168, height: 224, resize: 'stretch' },
  { width: 160, height: 160, resize: 'stretch' },
  { width: 128, height: 128, resize: 'stretch' },
];
