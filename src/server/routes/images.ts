/**
 * GET /images/:id: a catalog photo, looked up by id in the index. The request only ever
 * names an id; the file path comes from the index, so nothing a client sends reaches the
 * file system ("../../etc/passwd" is just an id that does not exist).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LookalikeError } from '../../errors.js';
import { itemOf, type ServerContext } from '../context.js';
import { errorResponse, idParams, type ApiTypeProvider } from '../schemas.js';

export async function imageRoutes(fastify: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const app = fastify.withTypeProvider<ApiTypeProvider>();
  app.get('/images/:id', {
    schema: {
      summary: 'The photo of a catalog item',
      tags: ['catalog'],
      params: idParams,
      response: {
        200: { description: 'the image file as stored in the catalog (JPEG, PNG or WebP)', content: { 'image/*': { schema: { type: 'string', format: 'binary' } } } },
        '4xx': errorResponse,
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const file = itemOf(ctx, id).image;
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
    } catch {
      throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
    }
    // Photos change only when the catalog is re-indexed; an hour of caching is safe.
    return reply.sendFile(path.basename(file), path.dirname(file), { maxAge: 3600_000 });
  });
}
