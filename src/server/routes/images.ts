/**
 * GET /images/:id: a catalog photo, looked up by id in the index. The request only ever
 * names an id; the file path comes from the index, so nothing a client sends reaches the
 * file system ("../../etc/passwd" is just an id that does not exist). The library checks
 * the file when it is read (Lookalike.catalogPhoto): still inside the catalog folder, still
 * the image type its name states.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { errorResponse, idParams, type ApiTypeProvider } from '../schemas.js';

export async function imageRoutes(fastify: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const app = fastify.withTypeProvider<ApiTypeProvider>();
  app.get('/images/:id', {
    schema: {
      summary: 'The photo of a catalog item',
      tags: ['catalog'],
      params: idParams,
      querystring: { type: 'object', additionalProperties: false, properties: { photo: { type: 'integer', minimum: 0, maximum: 10_000, description: 'a product with several photos: which one (0, the default, is the first)' } } },
      response: {
        200: { description: 'the image file as stored in the catalog (JPEG, PNG or WebP)', content: { 'image/*': { schema: { type: 'string', format: 'binary' } } } },
        '4xx': errorResponse,
      },
    },
  }, async (request, reply) => {
    const photo = (request.query as { photo?: number }).photo;
    const { bytes, format } = await ctx.lookalike.catalogPhoto(request.params.id, photo);
    // Photos change only when the catalog is re-indexed; an hour of caching is safe.
    return reply.type(`image/${format}`).header('Cache-Control', 'public, max-age=3600').send(bytes);
  });
}
