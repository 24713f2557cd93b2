/**
 * `lookalike index`: embed a catalog into an index (in this process, or through the job
 * queue with --queue, whose code is loaded only then).
 */
import { INDEX_BATCH_SIZE, SAMPLE_STRATA } from '../../defaults.js';
import { buildIndex } from '../../indexing/build.js';
import { readCatalog, summarizeProblems } from '../../catalog/index.js';
import { stratifiedSample } from '../../catalog/sample.js';
import type { SearchSetting } from '../../search/engine.js';
import { ANN_MIN_ITEMS } from '../../search/engine.js';
import { defaultSettings, PRECISIONS, type Precision, type ResizeMode, type Pooling } from '../../model/registry.js';
import { describeLocation } from '../../store/location.js';
import { checkInputSize } from '../../validate.js';
import { allowHostOption, envOption, indexOption, poolingOption, queueOption } from '../options.js';
import { action, badOption, fetchOptionsOf, intArg, print, printJson, progressBar, type Command } from '../shared.js';

export function registerIndexCommand(program: Command): void {
  program.command('index')
    .description('Embed a catalog (styles.csv + images/, or a folder of images) into an index. Incremental and resumable: rerun it after changes or an interruption.')
    .argument('<catalog>', 'catalog folder (read only; never written)')
    .addOption(indexOption())
    .addOption(envOption('--batch <n>', 'images per inference batch', 'LOOKALIKE_BATCH').argParser(intArg('batch', 1, 256)).default(INDEX_BATCH_SIZE))
    .addOption(envOption('--size <WxH>', `network input size, width x height (only when creating the index; default ${defaultSettings().width}x${defaultSettings().height}, as the reference; smaller is faster but finds the product in shoppers' photos less often)`, 'LOOKALIKE_SIZE'))
    .addOption(envOption('--precision <p>', `arithmetic of the network (only when creating the index; default ${defaultSettings().precision}): int8 gives the same vectors on every x86-64 CPU, recommends within 0.005 of fp32's precision@5 and indexes about twice as fast (README, "Same results on every CPU"); fp32 is the reference design's arithmetic`, 'LOOKALIKE_PRECISION').choices([...PRECISIONS]))
    .addOption(envOption('--resize <mode>', 'how photos become the input size: stretch (reference), pad to square, crop', 'LOOKALIKE_RESIZE').choices(['stretch', 'pad', 'crop']))
    .addOption(poolingOption('default pooling for search (both are stored)').env('LOOKALIKE_POOLING'))
    .addOption(envOption('--limit <n>', 'embed at most n new items in this run', 'LOOKALIKE_LIMIT').argParser(intArg('limit')))
    .addOption(envOption('--sample <n>', 'quick start: embed a sample of n items with the same share of every articleType (chosen by a stable hash of the id, so always the same ones); run again without --sample for the rest', 'LOOKALIKE_SAMPLE').argParser(intArg('sample', 1)))
    .addOption(envOption('--head <file>', 'search with a head trained on another catalog (`lookalike train --save FILE`); once this catalog is embedded, the head is re-centred on its vectors (no labels needed)', 'LOOKALIKE_HEAD'))
    .addOption(envOption('--search <method>', `how searches are answered from now on: auto (ann from ${ANN_MIN_ITEMS.toLocaleString('en-US')} items), exact, ann`, 'LOOKALIKE_INDEX_SEARCH').choices(['auto', 'exact', 'ann']))
    .addOption(envOption('--allow-remove', 'let this run remove more than half of the index (items missing from this catalog)', 'LOOKALIKE_ALLOW_REMOVE'))
    .addOption(allowHostOption())
    .addOption(queueOption())
    .addOption(envOption('--detach', 'with --queue: return once the work is queued (`lookalike status` shows the progress)', 'LOOKALIKE_DETACH'))
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExamples:\n  lookalike index ../shared/datasets/fashion-small --sample 1500   # quick start\n  lookalike index ../shared/datasets/fashion-small\n  lookalike index ./photos --index ./photos-index --resize pad\n  lookalike index ../shared/datasets/fashion-small --index ./fp32-index --precision fp32   # the reference arithmetic, about half the speed\n  lookalike index ./next-season --index ./next-index --head head.lkhead')
    .action(action(async (catalog: string, flags: { index: string; batch: number; size?: string; precision?: Precision; resize?: ResizeMode; pooling?: Pooling; limit?: number; sample?: number; head?: string; allowRemove?: boolean; search?: SearchSetting; queue?: string; detach?: boolean; json?: boolean; allowHost?: string[] }) => {
      const fetch = fetchOptionsOf(flags);
      const settings: Record<string, unknown> = {};
      if (flags.size) {
        const m = /^(\d+)x(\d+)$/.exec(flags.size);
        if (!m) badOption(`--size must look like 224x224, not "${flags.size}".`);
        settings.width = Number(m[1]);
        settings.height = Number(m[2]);
        checkInputSize(settings.width, settings.height);
      }
      if (flags.resize) settings.resize = flags.resize;
      if (flags.precision) settings.precision = flags.precision;
      if (flags.pooling) settings.pooling = flags.pooling;
      if (flags.queue) {
        if (flags.sample || flags.limit || flags.head || flags.search) badOption('--queue indexes the whole catalog: leave out --sample, --limit, --head and --search (set them with an in-process run).');
        return (await import('../queued.js')).queuedIndex({ catalogDir: catalog, location: flags.index, queue: flags.queue, settings, batchSize: flags.batch, allowRemove: flags.allowRemove, detach: flags.detach, json: flags.json, fetch });
      }
      const bar = progressBar('indexing', 'img');
      let started = false;
      const controller = new AbortController();
      const onSigint = () => {
        process.stderr.write('\nstopping after the current batch (everything embedded so far is kept; rerun to continue)...\n');
        controller.abort();
      };
      process.once('SIGINT', onSigint);
      let report: Awaited<ReturnType<typeof buildIndex>>;
      try {
        report = await buildIndex({
          catalogDir: catalog,
          indexDir: flags.index,
          settings,
          batchSize: flags.batch,
          limit: flags.sample ?? flags.limit,
          first: flags.sample ? await sampleIds(catalog, flags.sample) : undefined,
          head: flags.head,
          allowRemove: flags.allowRemove,
          search: flags.search,
          fetch,
          signal: controller.signal,
          log: (m) => process.stderr.write(`${m}\n`),
          onProgress: (p) => {
            if (!started) { bar.start(p.total); started = true; }
            bar.update(p.done, p.rate);
          },
        });
      } finally {
        bar.stop();
        process.off('SIGINT', onSigint);
      }
      if (flags.json) {
        printJson(report);
        return;
      }
      print(`catalog: ${report.catalog.root} (${report.catalog.kind}, ${report.catalog.items} items)`);
      if (report.catalog.problems.length) print(summarizeProblems(report.catalog.problems));
      print(`index: ${describeLocation(flags.index)}: ${report.total} items embedded (+${report.added - report.changed} new, ${report.changed ? `${report.changed} again (image changed), ` : ''}-${report.removed} removed) in ${report.seconds.toFixed(1)} s` +
        (report.added ? `, ${report.imagesPerSecond.toFixed(1)} images/s` : ''));
      if (report.failed.length) {
        print(`skipped ${report.failed.length} unreadable image(s):`);
        for (const f of report.failed.slice(0, 10)) print(`  ${f.id}: ${f.reason}`);
        if (report.failed.length > 10) print(`  ... and ${report.failed.length - 10} more (see --json)`);
      }
      if (flags.head) print(`search uses the head from ${flags.head}`);
      if (report.interrupted || report.pending) print(`${report.pending} item(s) still to embed: rerun the same command to continue.`);
    }));
}

/** A stratified sample of the catalog by articleType (the whole catalog's mix, in small). */
async function sampleIds(catalogDir: string, size: number): Promise<string[]> {
  const { items } = await readCatalog(catalogDir);
  return stratifiedSample(items.map((i) => ({ id: i.id, value: i.metadata[SAMPLE_STRATA] ?? '' })), size);
}
