/**
 * POST /api/search: by photo (multipart, field "image") or by catalog item (JSON {"id"}).
 * The photo is sniffed from its bytes before it may wait for the backbone, so a text file
 * renamed .jpg is refused at once, even when the server is busy.
 */
import type { FastifyInstance } from 'fastify';
import { inspectImage } from '../../image/prepare.js';
import { parseRegion } from '../../model/localise.js';
import { filtersOf, presentHit, presentQuery, type ServerContext } from '../context.js';
import { responses, searchBody, type ApiTypeProvider, type SearchBody } from '../schemas.js';

export async function searchRoutes(fastify: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const app = fastify.withTypeProvider<ApiTypeProvider>();
  app.post<{ Body: SearchBody }>('/api/search', {
    schema: {
      summary: 'Products that look like a photo, or like a catalog item',
      description: 'multipart/form-data with the photo in "image" (JPEG, PNG or WebP; at most the upload limit in /api/health), or JSON {"id": ...} for "more like this". '
        + 'Image searches wait in a bounded queue; when it is full the answer is 503 with Retry-After.',
      tags: ['search'],
      body: searchBody,
      response: responses.search,
    },
  }, async (request, reply) => {
    const started = performance.now();
    const body = request.body;
    const { lookalike, queue, limits } = ctx;
    const options = { k: body.k, threshold: body.threshold, filters: filtersOf(ctx, body.filter), mode: body.mode, pooling: body.pooling, search: body.search, dedupe: body.dedupe, group: body.group };
    if ('image' in body) {
      const image = body.image;
      const crop = body.crop ? parseRegion(body.crop) : undefined;
      const source = await inspectImage(image, 'the upload', limits.maxPixels);
      // A client that gives up while waiting loses its place instead of costing an inference.
      const gone = new AbortController();
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
      const response = await queue.run(
        () => lookalike.searchByImage(image, { ...options, crop, expand: body.expand, label: 'the upload', maxPixels: limits.maxPixels }),
        gone.signal,
      );
      return {
        query: { kind: 'image', ...source, crop, zoom: response.query.zoom, expanded: response.query.expanded, ...(response.query.warnings && { warnings: response.query.warnings }), ...(response.query.groupedBy && { groupedBy: response.query.groupedBy }) },
        space: response.space,
        regions: response.regions,
        tookMs: performance.now() - started,
        results: response.results.map(presentHit),
      };
    }
    const response = await lookalike.searchById(body.id, options);
    return { query: presentQuery(response.query), space: response.space, tookMs: performance.now() - started, results: response.results.map(presentHit) };
  });
}
