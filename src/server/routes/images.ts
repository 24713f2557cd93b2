/**
 * GET /images/:id: a catalog photo, looked up by id in the index. The request only ever
 * names an id; the file path comes from the index, so nothing a client sends reaches the
 * file system ("../../etc/passwd" is just an id that does not exist). The catalog can
 * change after indexing, so the file is checked when served: it must still resolve
 * (symlinks followed) inside the catalog folder, and its bytes must be the image type its
 * name states. A photo swapped for a link to /etc/passwd is refused, not served.
 */
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LookalikeError } from '../../errors.js';
import { sniffFormat } from '../../image/sniff.js';
import { itemOf, type ServerContext } from '../context.js';
import { errorResponse, idParams, type ApiTypeProvider } from '../schemas.js';

/** Larger files are not product photos. */
const MAX_PHOTO_BYTES = 50 * 1024 * 1024;

const TYPE_OF_EXTENSION: Record<string, string> = { '.jpg': 'jpeg', '.jpeg': 'jpeg', '.png': 'png', '.webp': 'webp' };

export async function imageRoutes(fastify: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const app = fastify.withTypeProvider<ApiTypeProvider>();
  // The catalog folder's real path on this machine (its catalog root), for the manifest now in
  // force: a replica that follows a re-index from another folder serves from that folder, as
  // a fresh start would.
  let cached: { dir: string; real: Promise<string | undefined> } | undefined;
  const root = () => {
    const dir = ctx.lookalike.catalogRoot();
    if (cached?.dir !== dir) {
      const real = realpath(dir).catch(() => undefined);
      cached = { dir, real };
      // A folder missing now may be mounted later: looked up again on the next request.
      void real.then((r) => { if (r === undefined && cached?.real === real) cached = undefined; });
    }
    return cached.real;
  };

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
    const { id } = request.params;
    const photo = (request.query as { photo?: number }).photo;
    const file = ctx.lookalike.imageOf(photo ? ctx.lookalike.photoOf(id, photo) : itemOf(ctx, id));
    const refused = (why: string) => new LookalikeError('CATALOG_IMAGE_REFUSED', { id, why });
    let real: string;
    try {
      real = await realpath(file);
    } catch {
      throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
    }
    const inside = await root();
    if (!inside || (real !== inside && !real.startsWith(inside + path.sep))) throw refused('the file now points outside the catalog folder');
    // Without blocking: a named pipe put in the catalog would hold the request for ever.
    const handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined);
    if (!handle) throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
    let bytes: Buffer;
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new LookalikeError('CATALOG_IMAGE_MISSING', { id });
      if (info.size > MAX_PHOTO_BYTES) throw refused(`the file is over ${MAX_PHOTO_BYTES / 1024 / 1024} MB, too large for a product photo`);
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
    const stated = TYPE_OF_EXTENSION[path.extname(real).toLowerCase()];
    const sniffed = sniffFormat(bytes);
    if (sniffed !== stated) throw refused(`the file is no longer a ${(stated ?? 'JPEG, PNG or WebP').toUpperCase()} image`);
    // Photos change only when the catalog is re-indexed; an hour of caching is safe.
    return reply.type(`image/${sniffed}`).header('Cache-Control', 'public, max-age=3600').send(bytes);
  });
}
