/**
 * Grouping by style, measured (docs/products.md) on the catalog scripts/products-catalog.ts
 * builds (its colour-variant families share a style_id) once it is indexed:
 *
 *   npx tsx scripts/variants-measure.ts INDEX [--photos 200]
 *
 * Every product of a family is a query, by id ("more like this") and, for the first
 * --photos of them, by its own photo; the top 10 is read with and without group=style.
 * A product without a style is a style of its own.
 */
import { readFileSync } from 'node:fs';
import { Lookalike, type QueryOptions, type SearchResponse } from '../src/lookalike.js';

const indexDir = process.argv[2];
const at = process.argv.indexOf('--photos');
const photos = at > 0 ? Number(process.argv[at + 1]) : 200;
const K = 10;
const lookalike = await Lookalike.open(indexDir);
try {
  const column = lookalike.styleColumn();
  if (!column) throw new Error(`${indexDir} has no style column`);
  const styleOf = (id: string) => lookalike.item(id).metadata[column] || `own-${id}`;
  const queries = lookalike.indexView().items.filter((i) => i.metadata[column]);
  type Tally = { distinct: number; sameStyle: number; full: number; n: number };
  const tally = (): Tally => ({ distinct: 0, sameStyle: 0, full: 0, n: 0 });
  const add = (t: Tally, queryId: string, r: SearchResponse) => {
    const styles = r.results.map((h) => styleOf(h.id));
    t.distinct += new Set(styles).size;
    t.sameStyle += styles.filter((s) => s === styleOf(queryId)).length;
    t.full += r.results.length === K ? 1 : 0;
    t.n++;
  };
  const rows: Array<[string, Tally, Tally]> = [];
  for (const [kind, list] of [['by id (more like this)', queries], ['by the product\'s own photo', queries.slice(0, photos)]] as const) {
    const plain = tally(), grouped = tally();
    for (const item of list) {
      const run = (options: QueryOptions) => (kind.startsWith('by id') ? lookalike.searchById(item.id, { ...options, k: K }) : lookalike.searchByImage(readFileSync(item.image), { ...options, k: K }));
      add(plain, item.id, await run({}));
      add(grouped, item.id, await run({ group: 'style' }));
    }
    rows.push([kind, plain, grouped]);
  }
  console.log(`${lookalike.size} products, ${queries.length} of them in ${new Set(queries.map((i) => i.metadata[column])).size} colour-variant families (${column}); top ${K}`);
  console.log('queries | n | distinct styles in the top 10, plain | grouped | results of the query\'s own style, plain | grouped | lists of 10, grouped');
  for (const [kind, p, g] of rows) {
    console.log(`${kind} | ${p.n} | ${(p.distinct / p.n).toFixed(2)} | ${(g.distinct / g.n).toFixed(2)} | ${(p.sameStyle / p.n).toFixed(2)} | ${(g.sameStyle / g.n).toFixed(2)} | ${g.full}/${g.n}`);
  }
} finally {
  await lookalike.close();
}
