/**
 * `lookalike export`: the index as CSV, embeddings and/or metadata.
 */
import type { Pooling } from '../../model/registry.js';
import { writeCsv } from '../csv.js';
import { indexOption, modeOption, poolingOption } from '../options.js';
import { action, badOption, withIndex, type Command } from '../shared.js';

export function registerExportCommand(program: Command): void {
  program.command('export')
    .description('Write the index as CSV: embeddings (id, then one column per dimension) and/or metadata (all columns). "-" writes to stdout.')
    .addOption(indexOption())
    .option('--embeddings <file>', 'embeddings CSV (the vectors search uses, L2-normalised)')
    .option('--metadata <file>', 'metadata CSV')
    .option('--raw', 'export raw backbone features instead of the normalised search vectors')
    .addOption(poolingOption('pooling of the exported features'))
    .addOption(modeOption('similarity mode when the index has a trained head'))
    .addHelpText('after', '\nExample:\n  lookalike export --embeddings emb.csv --metadata meta.csv')
    .action(action(async (flags: { index: string; embeddings?: string; metadata?: string; raw?: boolean; pooling?: Pooling; mode?: string }) => {
      if (!flags.embeddings && !flags.metadata) badOption('say what to export: --embeddings FILE and/or --metadata FILE.');
      await withIndex(flags.index, async (lookalike) => {
        const { manifest } = lookalike;
        const engine = lookalike.indexView();
        // Several photos per product: metadata once per product, embeddings once per photo naming its product.
        const photos = engine.photos.multi ? engine.photos : undefined;
        if (flags.metadata) {
          const columns = manifest.catalog.columns;
          const products = photos ? engine.items.filter((_, r) => photos.leadRows[r]) : engine.items;
          await writeCsv(flags.metadata, ['id', ...columns, 'image'], products.map((i) => [photos?.productOfRow(engine.rowOf(i.id)).id ?? i.id, ...columns.map((c) => i.metadata[c] ?? ''), i.image]));
        }
        if (flags.embeddings) {
          let data: Float32Array, dim: number;
          if (flags.raw) {
            const raw = engine.rawVectors();
            data = (flags.pooling ?? lookalike.settings.pooling) === 'avg' ? raw.avg : raw.max;
            dim = raw.dim;
          } else {
            ({ data, dim } = engine.matrix(lookalike.space({ pooling: flags.pooling, mode: flags.mode })));
          }
          const header = ['id', ...(photos ? ['product', 'photo'] : []), ...Array.from({ length: dim }, (_, j) => `e${j}`)];
          await writeCsv(flags.embeddings, header, engine.items.map((item, r) => {
            const row: string[] = photos ? [item.id, photos.productOfRow(r).id, String(photos.matched(r).index)] : [item.id];
            // Shortest decimal that reads back to the same float32: full precision, no noise.
            for (let j = 0; j < dim; j++) row.push(String(data[r * dim + j]));
            return row;
          }));
        }
        if (flags.embeddings !== '-' && flags.metadata !== '-') process.stderr.write(`exported ${photos ? `${photos.products} products, ${engine.size} photos` : `${engine.size} items`}\n`);
      });
    }));
}
