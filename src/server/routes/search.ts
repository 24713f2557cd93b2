/**
 * POST /api/search: by photo (multipart, field "image") or by catalog item (JSON {"id"}).
 * The photo is sniffed from its bytes before it may wait for the backbone, so a text file
 * renamed .jpg is refused at once, even when the server is busy.
 */
import type { FastifyInstance } from 'fastify';
import { parseCrop } from '../../validate.js';
import { filtersOf, presentHit, presentQuery, type ServerContext } from '../context.js';
import { recommendBody, responses, searchBody, type ApiTypeProvider, type RecommendBody, type SearchBody } from '../schemas.js';
import type { CheckedPhoto, Example, Look } from '../../lookalike.js';

const presentLook = (look: Look) => ({ box: look.box, expanded: look.expanded, results: look.results.map(presentHit) });
/** One upload or several (a repeated multipart field) as a list. */
const uploads = (value: Buffer | Buffer[] | undefined): Buffer[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

export async function searchRoutes(fastify: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const app = fastify.withTypeProvider<ApiTypeProvider>();
  app.post<{ Body: SearchBody }>('/api/search', {
    schema: {
      summary: 'Products that look like a photo, or like a catalog item',
      description: 'multipart/form-data with the photo in "image" (JPEG, PNG or WebP; at most the upload limit in /api/health), or JSON {"id": ...} for "more like this", or JSON {"text": ...} for words alone (products matching them, best match first). '
        + 'Any search may carry `text` (with `text_mode` filter or boost); a photo search may ask for `shop_the_look`. '
        + 'Image searches wait in a bounded queue; when it is full the answer is 503 with Retry-After.',
      tags: ['search'],
      body: searchBody,
      response: responses.search,
    },
  }, async (request, reply) => {
    const started = performance.now();
    const body = request.body;
    const { lookalike, queue, limits } = ctx;
    const options = { k: body.k, threshold: body.threshold, filters: filtersOf(ctx, body.filter), mode: body.mode, pooling: body.pooling, search: body.search, text: body.text, textMode: body.text_mode, dedupe: body.dedupe, group: body.group };
    if ('image' in body) {
      const image = body.image;
      const crop = body.crop !== undefined ? parseCrop(body.crop) : undefined;
      const photo = await lookalike.checkPhoto(image, { label: 'the upload', maxPixels: limits.maxPixels });
      // A client that gives up while waiting loses its place instead of costing an inference.
      const gone = new AbortController();
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
      const response = await queue.run(
        () => lookalike.searchByImage(photo, { ...options, crop, expand: body.expand, shopTheLook: body.shop_the_look }),
        gone.signal,
      );
      const { text, corrected, textMode } = response.query;
      return {
        query: { kind: 'image', ...photo.source, crop, zoom: response.query.zoom, expanded: response.query.expanded, ...(response.query.warnings && { warnings: response.query.warnings }), text, corrected, textMode, ...(response.query.groupedBy && { groupedBy: response.query.groupedBy }) },
        space: response.space,
        regions: response.regions,
        ...(response.looks && { looks: response.looks.map(presentLook) }),
        tookMs: performance.now() - started,
        results: response.results.map(presentHit),
      };
    }
    const response = body.id !== undefined ? await lookalike.searchById(body.id, options) : await lookalike.searchText(body.text!, options);
    return { query: presentQuery(response.query), space: response.space, tookMs: performance.now() - started, results: response.results.map(presentHit) };
  });

  app.post<{ Body: RecommendBody }>('/api/recommend', {
    schema: {
      summary: 'Products like the liked examples and unlike the disliked ones',
      description: 'JSON {"like": [ids], "unlike": [ids]}, or multipart/form-data with `like` / `unlike` ids (repeatable) and photos in `like_image` / `unlike_image`. '
        + 'The examples themselves never come back. k, threshold, filters, mode, text and text_mode work as in /api/search. Requests with photos wait in the inference queue.',
      tags: ['search'],
      body: recommendBody,
      response: responses.search,
    },
  }, async (request, reply) => {
    const started = performance.now();
    const body = request.body;
    const { lookalike, queue, limits } = ctx;
    const photos = 'like_image' in body || 'unlike_image' in body
      ? { like: uploads((body as { like_image?: Buffer | Buffer[] }).like_image), unlike: uploads((body as { unlike_image?: Buffer | Buffer[] }).unlike_image) }
      : { like: [], unlike: [] };
    // One at a time, in order: the first bad photo is the one reported.
    const check = async (list: Buffer[]) => {
      const out: CheckedPhoto[] = [];
      for (const image of list) out.push(await lookalike.checkPhoto(image, { label: 'the upload', maxPixels: limits.maxPixels }));
      return out;
    };
    const checked = { like: await check(photos.like), unlike: await check(photos.unlike) };
    const examples = (ids: string[] | undefined, images: CheckedPhoto[]): Example[] => [...(ids ?? []).map((id) => ({ id })), ...images.map((image) => ({ image }))];
    const options = {
      like: examples(body.like, checked.like), unlike: examples(body.unlike, checked.unlike), strategy: body.strategy,
      k: body.k, threshold: body.threshold, filters: filtersOf(ctx, body.filter), mode: body.mode, pooling: body.pooling, search: body.search, text: body.text, textMode: body.text_mode,
    };
    let response;
    if (photos.like.length + photos.unlike.length) {
      const gone = new AbortController();
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
      response = await queue.run(() => lookalike.recommend(options), gone.signal);
    } else {
      response = await lookalike.recommend(options);
    }
    return { query: response.query, space: response.space, tookMs: performance.now() - started, results: response.results.map(presentHit) };
  });
}
