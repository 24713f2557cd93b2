/**
 * The HTTP application: the web page and the JSON API over one opened index, in one
 * Fastify app. Routes (routes/*.ts) only translate HTTP to library calls; validation is
 * the JSON schemas in schemas.ts, errors are mapped in http-errors.ts, and image searches
 * go through the bounded inference queue in queue.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import type { Lookalike } from '../lookalike.js';
import { FACET_COLUMNS, MAX_PIXELS, MAX_UPLOAD_BYTES, SERVICE_DEFAULTS } from '../defaults.js';
import { PACKAGE_ROOT } from '../paths.js';
import { checkPositiveInteger } from '../validate.js';
import type { ModelState, ServerContext } from './context.js';
import { answerClientError, frameworkErrors, installErrorHandling, parseJsonBody } from './http-errors.js';
import { InferenceQueue, type QueueOptions } from './queue.js';
import { addSharedSchemas, JSON_BODY_LIMIT, MAX_ID_CHARS, MAX_PHOTO_EXAMPLES, UPLOAD_KEYWORD } from './schemas.js';
import { MAX_EXAMPLES } from '../search/recommend.js';
import { searchRoutes } from './routes/search.js';
import { itemRoutes } from './routes/items.js';
import { imageRoutes } from './routes/images.js';
import { metaRoutes } from './routes/meta.js';
import { instrument, serverRegistry } from './metrics.js';
import { readinessOf } from './readiness.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Settles when the background warm-up is over, with the model's state (never rejects). */
    modelReady: Promise<ModelState>;
    /**
     * Starts the shutdown: /api/health/ready answers 503 from now on, while every other
     * route keeps answering until `close()` (SIGTERM: drain, then close).
     */
    drain(): void;
  }
}

export const DEFAULT_MAX_UPLOAD_BYTES = MAX_UPLOAD_BYTES;
/** Routes orchestrators and Prometheus call every few seconds. */
const PROBES = new Set(['/api/health/live', '/api/health/ready', '/metrics']);
/** The fields a fashion catalog is browsed by, in the order the page shows them. */
export const DEFAULT_FACET_FIELDS: readonly string[] = FACET_COLUMNS;

export interface ServerOptions {
  /** Largest upload in bytes (default 10 MB). */
  maxUploadBytes?: number;
  /** Largest decoded image in pixels (default 40 megapixels). */
  maxPixels?: number;
  /** The inference queue, or its sizes (default: 1 running, 8 waiting). */
  queue?: InferenceQueue | QueueOptions;
  /** Folder of the built page (default web/dist of the package); false serves the API only. */
  webRoot?: string | false;
  /** Fields offered as filters (default: the fashion fields the catalog has). */
  facetFields?: string[];
  /** Fastify's logger (default off). */
  logger?: FastifyServerOptions['logger'];
  /** A pino logger to log with instead (`lookalike serve`: one format for every line). */
  loggerInstance?: FastifyBaseLogger;
  /** With `loggerInstance`: one line per request too (default false: errors and events only). */
  logRequests?: boolean;
  /** A replica further behind its database than this many seconds is not ready (default 30). */
  maxStalenessSeconds?: number;
  /** Serve GET /metrics (Prometheus; default true). */
  metrics?: boolean;
  /** Load the model and the search matrix in the background right away (default true). */
  warmUp?: boolean;
}

export function defaultWebRoot(): string {
  return path.join(PACKAGE_ROOT, 'web', 'dist');
}

export async function createServer(lookalike: Lookalike, options: ServerOptions = {}): Promise<FastifyInstance> {
  checkPositiveInteger(options.maxUploadBytes, 'maxUploadBytes');
  checkPositiveInteger(options.maxPixels, 'maxPixels');
  checkPositiveInteger(options.maxStalenessSeconds, 'maxStalenessSeconds');
  const ctx: ServerContext = {
    lookalike,
    queue: options.queue instanceof InferenceQueue ? options.queue : new InferenceQueue(options.queue),
    limits: { maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES, maxPixels: options.maxPixels ?? MAX_PIXELS },
    facetFields: options.facetFields ?? facetFieldsOf(lookalike),
    model: { state: 'loading' },
    startedAt: performance.now(),
    maxStalenessSeconds: options.maxStalenessSeconds ?? SERVICE_DEFAULTS.maxStalenessSeconds,
    draining: false,
    readiness: () => readinessOf(ctx),
  };
  const app = Fastify({
    ...(options.loggerInstance
      ? {
        loggerInstance: options.loggerInstance,
        // Probes and scrapes come every few seconds: logging them would drown the rest.
        logController: new LogController({ disableRequestLogging: (request) => !options.logRequests || PROBES.has(request.url.split('?')[0]) }),
      }
      : { logger: options.logger ?? false }),
    // Uploads have their own limit (multipart); JSON bodies are tiny.
    bodyLimit: JSON_BODY_LIMIT,
    requestTimeout: 120_000,
    routerOptions: {
      // Ids are checked by the schemas (MAX_ID_CHARS); the router's own default of 100
      // characters would answer 414 for the long relative paths of image-folder catalogs.
      // Percent-encoding takes up to 12 characters per character (an emoji). (Under
      // routerOptions: as a top-level option Fastify 5 warns FSTDEP022 at every start.)
      maxParamLength: 12 * MAX_ID_CHARS,
    },
    // Routing and HTTP-parser errors answer in the API's one error shape too.
    frameworkErrors: frameworkErrors(ctx),
    clientErrorHandler: answerClientError,
    ajv: {
      // Unknown parameters are errors, not silently dropped: a typo gets an answer.
      customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true },
      plugins: [uploadKeyword],
    },
  });

  installErrorHandling(app, ctx, { logToStderr: !options.logger && !options.loggerInstance });
  app.decorate('drain', () => { ctx.draining = true; });
  if (options.metrics !== false) instrument(app, serverRegistry(ctx));
  // Only JSON and multipart bodies exist in this API; anything else is a 415, not a guess.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('X-Content-Type-Options', 'nosniff');
    // Shutting down: no connection is kept alive past its answer, so that close() is not left
    // waiting for idle keep-alive connections, and clients reconnect to another replica.
    if (ctx.draining) reply.header('Connection', 'close');
    if (String(reply.getHeader('Content-Type') ?? '').startsWith('text/html')) {
      // Everything is bundled and same-origin: no CDN, no inline script.
      reply.header('Content-Security-Policy', "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
      reply.header('Referrer-Policy', 'no-referrer');
    }
    return payload;
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Lookalike API',
        version: packageVersion(),
        description: 'Visually similar fashion products. Every error answers `{ "error": { "code", "message" } }` with a message a person can act on.',
      },
      tags: [
        { name: 'search', description: 'similar products' },
        { name: 'catalog', description: 'items, photos, filters, map' },
        { name: 'service', description: 'health' },
      ],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (doc) => markUploads('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject),
  });
  addSharedSchemas(app);
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fileSize: ctx.limits.maxUploadBytes, files: MAX_PHOTO_EXAMPLES, fields: 40 + 2 * MAX_EXAMPLES, parts: 42 + 2 * MAX_EXAMPLES + MAX_PHOTO_EXAMPLES, fieldSize: 4096 },
  });

  await app.register(searchRoutes, { ctx });
  await app.register(itemRoutes, { ctx });
  await app.register(imageRoutes, { ctx });
  await app.register(metaRoutes, { ctx });
  await registerPage(app, options.webRoot === undefined ? defaultWebRoot() : options.webRoot);

  if (options.warmUp !== false) {
    const warming = warmUp(ctx);
    // Closing must not release the model under a warm-up that is still running.
    app.addHook('onClose', async () => { await warming; });
    app.decorate('modelReady', warming.then(() => ctx.model));
  } else {
    ctx.model = { state: 'ready', message: 'loaded on the first image search' };
    app.decorate('modelReady', Promise.resolve(ctx.model));
  }
  return app;
}

/**
 * Loads the backbone, builds the search matrix and runs one inference (through the queue,
 * so a first real request simply waits its turn), so that the first search is not slow.
 */
async function warmUp(ctx: ServerContext): Promise<void> {
  const { lookalike } = ctx;
  try {
    await lookalike.warmUp();
    await ctx.queue.run(() => lookalike.warmUpModel());
    ctx.model = { state: 'ready' };
  } catch (err) {
    ctx.model = { state: 'failed', message: err instanceof Error ? err.message : String(err) };
  }
}

async function registerPage(app: FastifyInstance, webRoot: string | false): Promise<void> {
  if (webRoot && existsSync(path.join(webRoot, 'index.html'))) {
    await app.register(fastifyStatic, {
      root: webRoot,
      wildcard: false,
      setHeaders: (res, file) => {
        // Vite puts a content hash in every asset name: those never change.
        res.setHeader('Cache-Control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
    return;
  }
  if (webRoot) {
    app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html').send(
      '<!doctype html><meta charset="utf-8"><title>Lookalike</title><p>The web page is not built yet: run <code>npm run build</code> and restart. The API is up: see <a href="/api/openapi.json">/api/openapi.json</a>.</p>',
    ));
  }
}

/** Catalog fields worth filtering on: the fashion ones, else any with a handful of values. */
function facetFieldsOf(lookalike: Lookalike): string[] {
  const columns = lookalike.manifest.catalog.columns;
  const known = DEFAULT_FACET_FIELDS.filter((f) => columns.includes(f));
  if (known.length) return known;
  const facets = lookalike.facets(columns);
  return columns.filter((c) => facets[c].length >= 2 && facets[c].length <= 100);
}

/** Ajv keyword for multipart file fields: @fastify/multipart hands files over as Buffers. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- Ajv is fastify's, not ours to import
function uploadKeyword<A extends { addKeyword: Function }>(ajv: A): A {
  ajv.addKeyword({
    keyword: UPLOAD_KEYWORD,
    schemaType: 'boolean',
    compile: (wanted: boolean) => (data: unknown) => !wanted || Buffer.isBuffer(data),
    errors: false,
  });
  return ajv;
}

/** In the OpenAPI document an upload field is a binary string (on a copy: the route schemas stay as they are). */
function markUploads<T>(original: T): T {
  const doc = JSON.parse(JSON.stringify(original)) as T;
  const visit = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    if (record[UPLOAD_KEYWORD] === true) {
      delete record[UPLOAD_KEYWORD];
      record.type = 'string';
      record.format = 'binary';
    }
    for (const value of Object.values(record)) visit(value);
  };
  visit(doc);
  return doc;
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}
