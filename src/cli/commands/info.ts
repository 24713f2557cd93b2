/**
 * `lookalike info`: describe an index: catalog, model settings, counts, skipped items.
 */
import { countProducts } from '../../search/products.js';
import { LookalikeError } from '../../errors.js';
import { calibrationId, saturatesWithoutVnni } from '../../model/quantise.js';
import { indexArithmetic } from '../../model/embedder.js';
import { cpuLine } from '../../model/cpu.js';
import { ANN_MIN_ITEMS } from '../../search/engine.js';
import { openStore } from '../../store/open.js';
import { describeLocation, indexArgs } from '../../store/location.js';
import { indexOption } from '../options.js';
import { action, print, printJson, withIndex, type Command } from '../shared.js';

export function registerInfoCommand(program: Command): void {
  program.command('info')
    .description('Describe an index: catalog, model settings, counts, skipped items.')
    .addOption(indexOption())
    .option('--json', 'print JSON')
    .action(action(async (flags: { index: string; json?: boolean }) => {
      // The store itself, not a searchable index: an index with nothing embedded yet (every
      // photo unreadable) must still show its failures.
      const store = await openStore(flags.index, { readonly: true });
      const read = () => {
        const manifest = store.getManifest();
        // No manifest: no indexing run got as far as writing one, so there is nothing to describe
        // (INDEX_EMPTY would send the user back to this very command).
        if (!manifest) throw new LookalikeError('INDEX_NOT_FOUND', { path: describeLocation(flags.index), args: indexArgs(flags.index) });
        // Several photos per product (search/products.ts): items are photos; products counted apart.
        const photos = countProducts(store.listItems());
        return { manifest, counts: { ...store.count(), ...photos }, failures: store.failures() };
      };
      let stored: ReturnType<typeof read>;
      try {
        stored = read();
      } finally {
        await store.close();
      }
      const { manifest, counts, failures } = stored;
      const search = counts.embedded ? await withIndex(flags.index, async (lookalike) => lookalike.searchStatus()) : undefined;
      // How this machine would embed for the index (queries, workers): named with its CPU.
      const arithmetic = await indexArithmetic(manifest.calibration);
      const info = { index: flags.index, manifest, counts, search, failures, arithmetic };
      if (flags.json) return printJson(info);
      const s = manifest.settings;
      print(`index:    ${describeLocation(flags.index)}`);
      print(`catalog:  ${manifest.catalog.root} (${manifest.catalog.kind})`);
      const precision = manifest.calibration ? `int8 (calibration ${calibrationId(manifest.calibration)}, ${manifest.calibration.images} images)` : 'float32';
      print(`model:    ${manifest.weightsId}, ${precision}, input ${s.width}x${s.height} ${s.resize}, ${s.pooling} pooling, ${manifest.dimension}-d`);
      print(`arithmetic: ${arithmetic.summary}`);
      print(`cpu:      ${cpuLine(arithmetic.cpu)}`);
      if (manifest.calibration && saturatesWithoutVnni(manifest.calibration.quantiser)) {
        print(`note:     quantised by v${manifest.calibration.quantiser} (8-bit weights): its queries are exact on every CPU, but if its catalog was`);
        print('          embedded on a CPU without VNNI before v5, those vectors carry int16 saturation. Rebuild it for v5');
        print('          (7-bit weights, the same vectors on every x86-64 CPU): remove the index and run `lookalike index` again.');
      }
      if (counts.products !== undefined) print(`products: ${counts.products}, with ${counts.photos} photos (${counts.embedded} embedded, ${counts.failed} unreadable)`);
      else print(`items:    ${counts.items} (${counts.embedded} embedded, ${counts.failed} unreadable)`);
      print(`updated:  ${manifest.updatedAt}`);
      if (search) {
        const why = search.setting === 'auto' ? `auto: ${search.method === 'ann' ? 'at least' : 'under'} ${ANN_MIN_ITEMS.toLocaleString('en-US')} items` : 'index setting';
        print(`search:   ${search.method === 'ann' ? 'ann (approximate index, candidates re-ranked exactly)' : 'exact (every item scored)'} (${why}), space ${search.space}`);
        if (search.ann) {
          const recall = search.ann.recallAt10 !== undefined ? `recall@10 vs exact ${search.ann.recallAt10.toFixed(4)} (${search.ann.recallQueries} queries)` : 'recall not measured';
          print(`ann:      ${recall}; ${search.ann.file}${search.ann.upToDate ? '' : ' (brought up to date on the next search)'}`);
        } else if (search.method === 'ann') {
          print('ann:      not built yet: built on the first search (or `lookalike serve` start) and saved beside the index');
        }
      }
      if (failures.length) {
        print(`unreadable photos (${failures.length}):`);
        for (const f of failures.slice(0, 20)) print(`  ${f.id}: ${f.reason}`);
        if (failures.length > 20) print(`  ... and ${failures.length - 20} more (see --json)`);
      }
    }));
}
