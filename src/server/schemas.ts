/**
 * JSON schemas of the HTTP API: they validate every request (query, params, body), shape
 * every response (fast serialisation, nothing internal such as file paths leaks out) and
 * are the OpenAPI document. Shared shapes are registered once and referenced by $id.
 */
import type { FastifyInstance } from 'fastify';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FromSchema } from 'json-schema-to-ts';
import { ACCEPTED_FORMATS, POOLINGS } from '../lookalike.js';
import { DEFAULT_K, MAX_K_HTTP, MAX_PAGE_SIZE, PAGE_SIZE, SEARCH_MODES } from '../defaults.js';
import { MAX_TEXT_CHARS, TEXT_MODES } from '../search/text.js';
import { MAX_EXAMPLES, RECOMMEND_STRATEGIES } from '../search/recommend.js';

/** Photos one request may upload (a recommendation's liked and disliked photos together). */
export const MAX_PHOTO_EXAMPLES = 4;

export const MAX_PAGE = MAX_PAGE_SIZE;
/** JSON bodies are tiny (an id and a few options); photos come as multipart with their own limit. */
export const JSON_BODY_LIMIT = 64 * 1024;
/** Longest item id, in characters (image-folder ids are relative paths, often over 100). */
export const MAX_ID_CHARS = 1024;

/** Marks a multipart field that must be an uploaded file (see the ajv keyword in app.ts). */
export const UPLOAD_KEYWORD = 'x-upload';

export const idParam = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_ID_CHARS,
  description: 'catalog item id, as in the catalog (styles.csv "id" column, or the image-folder path)',
} as const;

const filterParam = {
  type: 'array',
  maxItems: 32,
  items: { type: 'string', minLength: 1, maxLength: 300 },
  description:
    'metadata filter `field=value`, repeatable: `filter=gender=Women&filter=articleType=Shirts`. ' +
    'Different fields must all match; `field=a,b` (or repeating the field) accepts either value. Matching ignores case. ' +
    'The fields and their values are listed by GET /api/facets.',
} as const;

// No schema default for k: a missing k means the index's default (`lookalike tune --apply`, else DEFAULT_K).
const kParam = { type: 'integer', minimum: 1, maximum: MAX_K_HTTP, description: `how many similar products to return (default: the k stored by \`lookalike tune --apply\`, else ${DEFAULT_K})` } as const;
const thresholdParam = { type: 'number', minimum: -1, maximum: 1, description: 'minimum cosine similarity; fewer than k results is fine' } as const;
/** Similarity modes of a trained head (`lookalike train`); "color" is accepted for "colour". */
export const MODES = SEARCH_MODES;
const modeParam = {
  type: 'string',
  enum: [...MODES, 'color'],
  description: 'notion of similarity when the index has a trained head; without one the backbone is used and this is ignored',
} as const;
const poolingParam = { type: 'string', enum: [...POOLINGS], description: "pooling of the backbone features (default: the index's)" } as const;

/**
 * The part of the photo to search, relative to it: "x,y,w,h", each in 0..1 (the box a
 * shopper drew). Checked by the library (validate.ts parseCrop), as for the CLI: one
 * message and code (BAD_CROP), not a regular expression in the answer.
 */
export const cropParam = {
  type: 'string',
  maxLength: 200,
  description: 'search only this part of the photo: "x,y,w,h" relative to the photo (0..1), e.g. "0.1,0.2,0.5,0.6"; '
    + 'without it the product is found in the photo by itself. The response proposes up to 3 regions.',
} as const;
const searchParam = {
  type: 'string',
  enum: ['exact', 'ann', 'db'],
  description: "exact (score every item), ann (approximate index, candidates re-ranked exactly: scores are true cosines) or db (answered by PostgreSQL + pgvector, backbone max pooling only); default: the index's setting, else ann for large catalogs",
} as const;

const dedupeParam = { type: 'boolean', default: false, description: 'hide near-duplicates of a better-ranked product (near-identical photos); each result lists in `duplicates` the ids it hid' } as const;

const groupParam = { type: 'string', minLength: 1, maxLength: 100, description: '"style": one result per style (the catalog\'s style_id, parent or item_group_id column), the best variant first and the others in its `variants`; or a catalog column to group by. Without a style column, "style" changes nothing' } as const;

const textParam = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_TEXT_CHARS,
  description: 'words matched against the catalog\'s text (product name and attributes) by the store\'s full-text engine, e.g. "navy polo": plurals and word forms match (stemming), a word found nowhere is corrected to the nearest catalog word (query.corrected says so)',
} as const;
const textModeParam = {
  type: 'string',
  enum: [...TEXT_MODES],
  description: 'filter (default): only products matching every word; boost: products matching the words move up, the others stay',
} as const;

/** Query-string / body properties shared by every search. */
export const searchProperties = { k: kParam, threshold: thresholdParam, filter: filterParam, mode: modeParam, pooling: poolingParam, search: searchParam, text: textParam, text_mode: textModeParam, dedupe: dedupeParam, group: groupParam } as const;

export const searchQuerystring = { type: 'object', additionalProperties: false, properties: searchProperties } as const;

export const listQuerystring = {
  type: 'object',
  additionalProperties: false,
  properties: {
    filter: filterParam,
    offset: { type: 'integer', minimum: 0, default: 0, description: 'items to skip' },
    limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: PAGE_SIZE, description: 'items per page' },
  },
} as const;

export const facetsQuerystring = {
  type: 'object',
  additionalProperties: false,
  properties: {
    filter: filterParam,
    field: {
      type: 'array',
      maxItems: 64,
      items: { type: 'string', minLength: 1, maxLength: 100 },
      description: 'fields to count (repeatable); default: the catalog fields worth filtering on',
    },
  },
} as const;

export const idParams = { type: 'object', required: ['id'], additionalProperties: false, properties: { id: idParam } } as const;

const photoSearchBody = {
  type: 'object',
  required: ['image'],
  additionalProperties: false,
  properties: {
    image: { [UPLOAD_KEYWORD]: true, description: `the photo: ${ACCEPTED_FORMATS.join(', ')} (sniffed from the bytes, not the name)` },
    crop: cropParam,
    expand: { type: 'boolean', default: true, description: 'when the top result stands out, search the rest with its catalog vector added to the photo\'s (more like the product found); false: the photo alone' },
    shop_the_look: { type: 'boolean', default: false, description: 'also search each proposed region of the photo on its own: the response\'s `looks` holds one {box, results} per region' },
    ...searchProperties,
  },
} as const;

const itemSearchBody = {
  type: 'object',
  anyOf: [{ required: ['id'] }, { required: ['text'] }],
  additionalProperties: false,
  properties: { id: idParam, ...searchProperties },
} as const;

const idList = <W extends string>(what: W) => ({
  type: 'array',
  maxItems: MAX_EXAMPLES,
  items: idParam,
  description: `catalog item ids the shopper ${what} (repeatable in multipart)`,
} as const);
const uploadList = <W extends string>(what: W) => ({
  anyOf: [{ [UPLOAD_KEYWORD]: true, description: 'one photo' }, { type: 'array', maxItems: MAX_PHOTO_EXAMPLES, items: { [UPLOAD_KEYWORD]: true, description: 'a photo' } }],
  description: `photos the shopper ${what} (multipart only; at most 4 photos in all)`,
} as const);
const strategyParam = {
  type: 'string',
  enum: [...RECOMMEND_STRATEGIES],
  description: 'how the examples combine: average (default; mean of the liked minus half the mean of the disliked, searched as one query), best_score (each product by its best liked example, pushed down when a disliked one is nearer), sum_scores',
} as const;

const recommendJsonBody = {
  type: 'object',
  required: ['like'],
  additionalProperties: false,
  properties: { like: idList('likes'), unlike: idList('does not want'), strategy: strategyParam, ...searchProperties },
} as const;

const recommendPhotoBody = {
  type: 'object',
  additionalProperties: false,
  properties: { like: idList('likes'), unlike: idList('does not want'), like_image: uploadList('likes'), unlike_image: uploadList('does not want'), strategy: strategyParam, ...searchProperties },
} as const;

export const recommendBody = {
  content: {
    'application/json': { schema: recommendJsonBody },
    'multipart/form-data': { schema: recommendPhotoBody },
  },
} as const;

export type RecommendBody = FromSchema<typeof recommendJsonBody, RequestSchemaOptions> | FromSchema<typeof recommendPhotoBody, RequestSchemaOptions>;

export const searchBody = {
  content: {
    'multipart/form-data': { schema: photoSearchBody },
    'application/json': { schema: itemSearchBody },
  },
} as const;

/**
 * Request types come from the schemas above (json-schema-to-ts), never written by hand.
 * A multipart upload reaches a handler as a Buffer (@fastify/multipart, keyValues).
 */
interface RequestSchemaOptions {
  deserialize: [{ pattern: { [UPLOAD_KEYWORD]: true }; output: Buffer }];
}

/** The type provider every route registers with: `app.withTypeProvider<ApiTypeProvider>()`. */
export type ApiTypeProvider = JsonSchemaToTsProvider<{ ValidatorSchemaOptions: RequestSchemaOptions }>;

/**
 * POST /api/search's body: one schema per content type, which the type provider does not
 * see through, so the union is derived here from the same two schemas.
 */
export type SearchBody = FromSchema<typeof photoSearchBody, RequestSchemaOptions> | FromSchema<typeof itemSearchBody, RequestSchemaOptions>;

const ref = (id: string) => ({ $ref: `${id}#` });

export const errorResponse = ref('Error');

/** Registers the shared shapes; call before the routes. */
export function addSharedSchemas(app: FastifyInstance): void {
  app.addSchema({
    $id: 'Error',
    type: 'object',
    description: 'every error: a stable code for programs, a message for people',
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', description: 'stable, e.g. IMAGE_UNSUPPORTED, SERVER_BUSY' },
          message: { type: 'string', description: 'what went wrong and what to do, in plain words' },
        },
      },
    },
  });
  app.addSchema({
    $id: 'Metadata',
    type: 'object',
    description: 'the catalog row of the item (styles.csv columns, or "folder")',
    additionalProperties: { type: 'string' },
  });
  app.addSchema({
    $id: 'Item',
    type: 'object',
    required: ['id', 'metadata', 'imageUrl'],
    properties: {
      id: { type: 'string' },
      metadata: ref('Metadata'),
      imageUrl: { type: 'string', description: 'GET this for the product photo' },
    },
  });
  app.addSchema({
    $id: 'Hit',
    type: 'object',
    required: ['id', 'rank', 'score', 'metadata', 'imageUrl'],
    properties: {
      id: { type: 'string' },
      rank: { type: 'integer', description: '1 = most similar' },
      score: { type: 'number', description: 'cosine similarity, higher is more similar (a search by words alone: text relevance, the best match 1)' },
      metadata: ref('Metadata'),
      imageUrl: { type: 'string' },
      duplicates: { type: 'array', items: { type: 'string' }, description: 'with dedupe: ids of near-duplicates of this product left out of the list' },
      variants: { type: 'array', items: ref('Variant'), description: 'with group: the other products of this product\'s style (or group), best first' },
      photo: ref('MatchedPhoto'),
    },
  });
  app.addSchema({
    $id: 'MatchedPhoto',
    type: 'object',
    description: 'a product with several photos: the one that matched (its score is the product\'s)',
    required: ['index', 'of', 'imageUrl', 'photos'],
    properties: {
      index: { type: 'integer', description: 'its place among the product\'s photos, 0 being the first' },
      of: { type: 'integer', description: 'how many photos the product has' },
      view: { type: 'string', description: 'its view or role, when the catalog names it (images.csv)' },
      imageUrl: { type: 'string', description: 'GET this for the matched photo' },
      photos: { type: 'array', items: { type: 'string' }, description: 'every photo of the product, in order (GET each)' },
    },
  });
  app.addSchema({
    $id: 'Variant',
    type: 'object',
    required: ['id', 'score', 'metadata', 'imageUrl'],
    properties: {
      id: { type: 'string' },
      score: { type: 'number', description: 'cosine similarity to the query' },
      metadata: ref('Metadata'),
      imageUrl: { type: 'string' },
    },
  });
  app.addSchema({
    $id: 'SearchResponse',
    type: 'object',
    required: ['query', 'space', 'results', 'tookMs'],
    properties: {
      query: {
        type: 'object',
        required: ['kind'],
        properties: {
          kind: { type: 'string', enum: ['image', 'item', 'text', 'examples'] },
          id: { type: 'string' },
          text: { type: 'string', description: 'the words searched, as sent' },
          corrected: { type: 'string', description: 'the words as searched, when some matched nothing and were corrected to catalog words' },
          textMode: { type: 'string', enum: [...TEXT_MODES] },
          like: { type: 'array', items: { type: 'string' }, description: 'recommend: the liked catalog items' },
          unlike: { type: 'array', items: { type: 'string' }, description: 'recommend: the disliked catalog items' },
          photos: { type: 'integer', description: 'recommend: how many example photos were uploaded' },
          strategy: { type: 'string', enum: [...RECOMMEND_STRATEGIES] },
          width: { type: 'integer' },
          height: { type: 'integer' },
          format: { type: 'string' },
          crop: ref('Region'),
          // The part of the (cropped) photo looked at a second time, where the product was found.
          zoom: ref('Region'),
          expanded: { type: 'boolean', description: 'whether the results were searched with the top result\'s vector added (see the request\'s expand)' },
          duplicates: { type: 'array', items: { type: 'string' }, description: 'more like an item, with dedupe: the item\'s own near-duplicates, left out of the results' },
          variants: { type: 'array', items: ref('Variant'), description: 'more like an item, with group: the other products of the item\'s own style, left out of the results' },
          groupedBy: { type: 'string', description: 'the catalog column the results were grouped by, when they were' },
          warnings: { type: 'array', items: { type: 'string' }, description: 'damage in the photo that was worked around (it was still searched)' },
        },
      },
      regions: {
        type: 'array',
        items: ref('Region'),
        description: 'photo searches: up to 3 regions where products seem to be (from the backbone\'s feature map), best first; send one back as `crop`',
      },
      looks: {
        type: 'array',
        description: 'shop_the_look: each proposed region of the photo searched on its own, in the order of `regions`',
        items: {
          type: 'object',
          required: ['box', 'results'],
          properties: { box: ref('Region'), expanded: { type: 'boolean' }, results: { type: 'array', items: ref('Hit') } },
        },
      },
      space: { type: 'string', description: 'the embedding space searched, e.g. backbone:max; "text" for words alone' },
      tookMs: { type: 'number', description: 'time spent answering, in milliseconds' },
      results: { type: 'array', items: ref('Hit') },
    },
  });
  app.addSchema({
    $id: 'Region',
    type: 'object',
    description: 'a rectangle relative to the photo (0..1)',
    required: ['x', 'y', 'w', 'h'],
    properties: {
      x: { type: 'number' }, y: { type: 'number' }, w: { type: 'number' }, h: { type: 'number' },
      score: { type: 'number', description: 'share of the photo\'s activation in this region' },
    },
  });
  app.addSchema({
    $id: 'ItemPage',
    type: 'object',
    required: ['total', 'offset', 'limit', 'items'],
    properties: {
      total: { type: 'integer', description: 'items matching the filters' },
      offset: { type: 'integer' },
      limit: { type: 'integer' },
      items: { type: 'array', items: ref('Item') },
    },
  });
  app.addSchema({
    $id: 'Facets',
    type: 'object',
    required: ['total', 'fields'],
    properties: {
      total: { type: 'integer', description: 'items matching all the filters' },
      fields: {
        type: 'object',
        description: "per field, its values with counts, most common first. A field's counts apply every filter except the field's own, so they say what choosing that value would give.",
        additionalProperties: {
          type: 'array',
          items: { type: 'object', required: ['value', 'count'], properties: { value: { type: 'string' }, count: { type: 'integer' } } },
        },
      },
    },
  });
  app.addSchema({
    $id: 'Health',
    type: 'object',
    required: ['status', 'ready', 'model', 'index', 'queue', 'limits', 'modes', 'defaults', 'uptimeSeconds'],
    properties: {
      status: { type: 'string', enum: ['ok'] },
      ready: { type: 'boolean', description: 'the model is loaded: image searches answer at full speed' },
      model: {
        type: 'object',
        required: ['state', 'weightsId'],
        properties: {
          state: { type: 'string', enum: ['loading', 'ready', 'failed'] },
          weightsId: { type: 'string' },
          message: { type: 'string' },
          arithmetic: {
            type: 'object',
            description: 'The arithmetic queries are embedded in on this machine, and the CPU it relies on (model/cpu.ts)',
            required: ['precision', 'kernels', 'exact', 'summary', 'cpu'],
            properties: {
              precision: { type: 'string', enum: ['fp32', 'int8'] },
              quantiser: { type: 'integer' },
              weightBits: { type: 'integer' },
              kernels: { type: 'string', enum: ['float32', 'u8s8', 'u8u8'] },
              cpuSaturates: { type: 'boolean', description: "whether this CPU's u8 x s8 kernels add product pairs in saturating int16 (no VNNI)" },
              exact: { type: 'boolean', description: 'whether the chosen kernels summed the int8 probe exactly (an inexact CPU is refused: INT8_INEXACT)' },
              summary: { type: 'string' },
              cpu: {
                type: 'object',
                required: ['model', 'arch', 'cores', 'flags'],
                properties: {
                  model: { type: 'string' },
                  arch: { type: 'string' },
                  cores: { type: 'integer' },
                  flags: { type: 'array', items: { type: 'string' } },
                  vnni: { type: 'boolean' },
                },
              },
            },
          },
        },
      },
      index: {
        type: 'object',
        required: ['items', 'columns', 'facetFields', 'settings', 'updatedAt', 'hasMap', 'generation'],
        properties: {
          items: { type: 'integer' },
          columns: { type: 'array', items: { type: 'string' } },
          facetFields: { type: 'array', items: { type: 'string' } },
          settings: { type: 'object', additionalProperties: true },
          updatedAt: { type: 'string' },
          hasMap: { type: 'boolean' },
          generation: { type: 'integer', description: 'The store generation this replica serves: it changes with every write to the index, and replicas of one store that answer the same generation hold the same data.' },
        },
      },
      queue: {
        type: 'object',
        required: ['running', 'waiting', 'concurrency', 'maxWaiting', 'averageMs'],
        properties: {
          running: { type: 'integer' },
          waiting: { type: 'integer' },
          concurrency: { type: 'integer' },
          maxWaiting: { type: 'integer' },
          averageMs: { type: 'number' },
        },
      },
      limits: {
        type: 'object',
        required: ['maxUploadBytes', 'maxPixels', 'formats', 'maxK'],
        properties: {
          maxUploadBytes: { type: 'integer' },
          maxPixels: { type: 'integer' },
          formats: { type: 'array', items: { type: 'string' } },
          maxK: { type: 'integer' },
        },
      },
      modes: { type: 'array', items: { type: 'string' }, description: 'values of `mode` that change the results (empty: the index has no trained head)' },
      defaults: {
        type: 'object',
        required: ['k'],
        description: 'what a search that leaves k or threshold out gets: the values `lookalike tune --apply` stored, else the built-in defaults',
        properties: { k: { type: 'integer' }, threshold: { type: 'number' } },
      },
      uptimeSeconds: { type: 'number' },
      replica: ref('ReplicaFreshness'),
    },
  });
  app.addSchema({
    $id: 'ReplicaFreshness',
    type: 'object',
    description: 'a replica of a shared store: how far its answers are behind the database',
    required: ['generation', 'storeGeneration', 'lagSeconds', 'maxStalenessSeconds', 'confirmedAt'],
    properties: {
      generation: { type: 'integer', description: 'the generation the answers come from' },
      storeGeneration: { type: 'integer', description: 'the newest generation read from the database (ahead while the replica rebuilds)' },
      lagSeconds: { type: 'number', description: 'seconds since the answers were last confirmed to be the database\'s latest' },
      maxStalenessSeconds: { type: 'number', description: 'past this lag the replica is not ready (serve --max-staleness)' },
      confirmedAt: { type: 'string' },
    },
  });
  app.addSchema({
    $id: 'Readiness',
    type: 'object',
    required: ['ready', 'reasons', 'model', 'draining'],
    properties: {
      ready: { type: 'boolean' },
      reasons: { type: 'array', items: { type: 'string' }, description: 'why the server is not ready (empty when it is)' },
      model: {
        type: 'object',
        required: ['state'],
        properties: { state: { type: 'string', enum: ['loading', 'ready', 'failed'] }, message: { type: 'string' } },
      },
      draining: { type: 'boolean', description: 'the server is shutting down (SIGTERM): requests in flight finish, new traffic should go elsewhere' },
      store: ref('ReplicaFreshness'),
    },
  });
  app.addSchema({
    $id: 'Liveness',
    type: 'object',
    required: ['status'],
    properties: { status: { type: 'string', enum: ['ok'] } },
  });
  app.addSchema({
    $id: 'Map',
    type: 'object',
    required: ['method', 'createdAt', 'points', 'attributes'],
    properties: {
      method: { type: 'string', description: 'how the 2-D layout was made (e.g. tsne, pca)' },
      attribute: { type: 'string', description: 'the attribute the map suggests colouring by' },
      createdAt: { type: 'string' },
      points: {
        type: 'array',
        items: { type: 'object', required: ['id', 'x', 'y'], properties: { id: { type: 'string' }, x: { type: 'number' }, y: { type: 'number' } } },
      },
      attributes: {
        type: 'object',
        description: "per facet field, the distinct values and each point's value as an index into them (-1: none), so the page can colour 30k points without 30k rows of metadata",
        additionalProperties: {
          type: 'object',
          required: ['values', 'codes'],
          properties: { values: { type: 'array', items: { type: 'string' } }, codes: { type: 'array', items: { type: 'integer' } } },
        },
      },
    },
  });
}

export const responses = {
  search: { 200: ref('SearchResponse'), '4xx': errorResponse, '5xx': errorResponse },
  page: { 200: ref('ItemPage'), '4xx': errorResponse, '5xx': errorResponse },
  item: { 200: ref('Item'), '4xx': errorResponse, '5xx': errorResponse },
  facets: { 200: ref('Facets'), '4xx': errorResponse, '5xx': errorResponse },
  health: { 200: ref('Health'), '5xx': errorResponse },
  live: { 200: ref('Liveness') },
  ready: { 200: ref('Readiness'), 503: ref('Readiness') },
  map: { 200: ref('Map'), '4xx': errorResponse, '5xx': errorResponse },
} as const;
