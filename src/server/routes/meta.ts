/**
 * About the service: health (liveness plus readiness details), the OpenAPI document,
 * and the 2-D map of the catalog when `lookalike map` has made one.
 */
import type { FastifyInstance } from 'fastify';
import { MAX_K_HTTP } from '../../defaults.js';
import { LookalikeError } from '../../errors.js';
import { ACCEPTED_FORMATS } from '../../lookalike.js';
import type { ServerContext } from '../context.js';
import { MODES, responses } from '../schemas.js';

interface MapFile { method: string; attribute?: string; createdAt: string; points: Array<{ id: string; x: number; y: number }> }

export async function metaRoutes(app: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const { lookalike } = ctx;

  app.get('/api/health/live', {
    schema: { summary: 'Liveness: the process answers (restart it when this fails, never because the database is away)', tags: ['service'], response: responses.live },
    logLevel: 'warn',
  }, async () => ({ status: 'ok' as const }));

  app.get('/api/health/ready', {
    schema: {
      summary: 'Readiness: 200 when the server should get traffic (model loaded, not shutting down, a replica within its staleness bound of the database), else 503 with the reasons',
      tags: ['service'],
      response: responses.ready,
    },
    logLevel: 'warn',
  }, async (_request, reply) => {
    const readiness = ctx.readiness();
    return reply.code(readiness.ready ? 200 : 503).header('Cache-Control', 'no-store').send(readiness);
  });

  app.get('/api/health', {
    schema: { summary: 'What the server serves (always 200 while it runs: for readiness see /api/health/ready), whether the model is ready, and a replica\'s lag', tags: ['service'], response: responses.health },
  }, async () => ({
    status: 'ok',
    ready: ctx.model.state === 'ready',
    model: { ...ctx.model, weightsId: lookalike.manifest.weightsId, arithmetic: await lookalike.arithmetic() },
    index: {
      items: lookalike.size,
      columns: lookalike.manifest.catalog.columns,
      facetFields: ctx.facetFields,
      settings: { ...lookalike.settings },
      updatedAt: lookalike.manifest.updatedAt,
      hasMap: (await lookalike.storedMap()) !== undefined,
      generation: lookalike.generation,
    },
    queue: ctx.queue.stats(),
    limits: { ...ctx.limits, formats: [...ACCEPTED_FORMATS], maxK: MAX_K_HTTP },
    modes: lookalike.head ? [...MODES] : [],
    defaults: lookalike.defaults(),
    uptimeSeconds: Math.round((performance.now() - ctx.startedAt) / 100) / 10,
    ...(ctx.readiness().store && { replica: ctx.readiness().store }),
  }));

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // The map is rewritten by another process at any time (`lookalike map`): re-read when it changes.
  let cached: { version: number | Buffer; body: unknown } | undefined;
  app.get('/api/map', {
    schema: {
      summary: 'The catalog laid out in 2-D (t-SNE or PCA of the embeddings), made by `lookalike map`',
      tags: ['catalog'],
      response: responses.map,
    },
  }, async () => {
    const stored = await lookalike.storedMap();
    if (!stored) throw new LookalikeError('MAP_NOT_FOUND', { path: lookalike.indexDir });
    if (cached?.version !== stored.version) {
      let map: MapFile;
      try {
        map = JSON.parse((await stored.read()).toString('utf8')) as MapFile;
        if (!Array.isArray(map.points)) throw new Error('no "points" list');
      } catch (err) {
        throw new LookalikeError('MAP_UNREADABLE', { path: stored.where, index: lookalike.indexDir, reason: err instanceof Error ? err.message : String(err) });
      }
      cached = { version: stored.version, body: { ...map, attributes: attributeCodes(ctx, map.points) } };
    }
    return cached.body;
  });
}

/** Per facet field: distinct values (most common first) and each point's value index. */
function attributeCodes(ctx: ServerContext, points: MapFile['points']) {
  const { lookalike } = ctx;
  const out: Record<string, { values: string[]; codes: number[] }> = {};
  for (const field of ctx.facetFields) {
    const values = lookalike.facets([field])[field].map((f) => f.value);
    const index = new Map(values.map((v, i) => [v, i]));
    const codes = points.map((p) => {
      if (!lookalike.has(p.id)) return -1;
      return index.get(lookalike.item(p.id).metadata[field] ?? '') ?? -1;
    });
    out[field] = { values, codes };
  }
  return out;
}
