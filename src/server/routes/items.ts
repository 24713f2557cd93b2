/**
 * The catalog over HTTP: list and filter items, one item, "more like this", and the
 * facet counts the page builds its filters from.
 */
import type { FastifyInstance } from 'fastify';
import { LookalikeError } from '../../errors.js';
import { filtersOf, itemOf, presentHit, presentQuery, presentItem, type ServerContext } from '../context.js';
import { facetsQuerystring, idParams, listQuerystring, responses, searchQuerystring, type ApiTypeProvider } from '../schemas.js';

export async function itemRoutes(fastify: FastifyInstance, { ctx }: { ctx: ServerContext }): Promise<void> {
  const app = fastify.withTypeProvider<ApiTypeProvider>();
  const { lookalike } = ctx;

  app.get('/api/items', {
    schema: { summary: 'Catalog items, filtered and paginated, in catalog order', tags: ['catalog'], querystring: listQuerystring, response: responses.page },
  }, async (request) => {
    const q = request.query;
    const { total, items } = lookalike.list(filtersOf(ctx, q.filter), q.offset, q.limit);
    return { total, offset: q.offset, limit: q.limit, items: items.map(presentItem) };
  });

  app.get('/api/items/:id', {
    schema: { summary: 'One catalog item', tags: ['catalog'], params: idParams, response: responses.item },
  }, async (request) => presentItem(itemOf(ctx, request.params.id)));

  app.get('/api/items/:id/similar', {
    schema: {
      summary: 'More like this: products that look like a catalog item (the item itself excluded)',
      tags: ['search'],
      params: idParams,
      querystring: searchQuerystring,
      response: responses.search,
    },
  }, async (request) => {
    const started = performance.now();
    const { id } = request.params;
    const q = request.query;
    const response = await lookalike.searchById(id, { k: q.k, threshold: q.threshold, filters: filtersOf(ctx, q.filter), mode: q.mode, pooling: q.pooling, search: q.search, text: q.text, textMode: q.text_mode, dedupe: q.dedupe, group: q.group });
    return { query: presentQuery(response.query), space: response.space, tookMs: performance.now() - started, results: response.results.map(presentHit) };
  });

  app.get('/api/facets', {
    schema: {
      summary: 'Filter values with counts',
      description: "For each field, its values and how many items have them. A field's counts apply every other filter but not its own, so they tell what picking that value would give.",
      tags: ['catalog'],
      querystring: facetsQuerystring,
      response: responses.facets,
    },
  }, async (request) => {
    const q = request.query;
    const columns = lookalike.manifest.catalog.columns;
    const fields = q.field?.length ? q.field.map((f) => resolveField(f, columns)) : ctx.facetFields;
    const filters = filtersOf(ctx, q.filter);
    return { total: lookalike.count(filters), fields: lookalike.facets(fields, filters) };
  });
}

function resolveField(field: string, columns: string[]): string {
  const match = columns.find((c) => c.toLowerCase() === field.toLowerCase());
  if (!match) throw new LookalikeError('UNKNOWN_FILTER_FIELD', { field, known: columns.join(', ') });
  return match;
}
