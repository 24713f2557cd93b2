/**
 * The core commands: index, query, similar, export, recommend, info.
 * Each is a thin layer over the library (buildIndex, Lookalike).
 */
import { createWriteStream, existsSync } from 'node:fs';
import { Option } from 'commander';
import { stringify } from 'csv-stringify';
import { DEFAULT_K, INDEX_BATCH_SIZE, SAMPLE_STRATA, SEARCH_MODES, SHOWN_COLUMNS } from '../../defaults.js';
import { buildIndex } from '../../indexing/build.js';
import { queuedIndex, queueOption } from './queue.js';
import { readCatalog, summarizeProblems } from '../../catalog/index.js';
import { stratifiedSample } from '../../tune/sample.js';
import { parseFilters } from '../../search/filters.js';
import { ANN_MIN_ITEMS, type SearchMethod, type SearchSetting } from '../../search/engine.js';
import { searchSettingOf, type Example, type SearchResponse } from '../../lookalike.js';
import type { SearchHit } from '../../search/engine.js';
import { TEXT_MODES, type TextMode } from '../../search/text.js';
import { RECOMMEND_STRATEGIES, type RecommendStrategy } from '../../search/recommend.js';
import { defaultSettings, PRECISIONS, type Precision, type ResizeMode, type Pooling } from '../../model/registry.js';
import { calibrationId, saturatesWithoutVnni } from '../../model/quantise.js';
import { indexArithmetic } from '../../model/embedder.js';
import { cpuLine } from '../../model/cpu.js';
import { openStore } from '../../store/open.js';
import { copyIndex } from '../../store/copy.js';
import { isStoreUrl, parseLocation } from '../../store/location.js';
import { describeLocation, indexArgs } from '../../store/location.js';
import { LookalikeError } from '../../errors.js';
import { checkInputSize, MAX_K, parseCrop } from '../../validate.js';
import { countProducts } from '../../search/products.js';
import { action, allowHostOption, badOption, collect, envOption, fetchOptionsOf, floatArg, indexOption, intArg, print, printJson, progressBar, table, withIndex, type Command } from '../shared.js';

const searchOptions = (cmd: Command) => cmd
  .addOption(indexOption())
  .option('-k, --k <n>', `number of similar products to return (default: ${DEFAULT_K}, or the value \`lookalike tune --apply\` chose)`, intArg('k', 1, MAX_K))
  .option('-t, --threshold <cosine>', 'minimum cosine similarity (-1..1); fewer results is fine', floatArg('threshold', -1, 1))
  .option('-f, --filter <field=value>', 'keep only products whose field matches (repeatable; a,b = either)', collect, [])
  .addOption(new Option('--pooling <kind>', 'pooling of the backbone features (default: the index\'s)').choices(['max', 'avg']))
  .option('--mode <mode>', `notion of similarity when the index has a trained head: ${SEARCH_MODES.join(', ')}`)
  .option('--dedupe', 'hide near-duplicates of a better-ranked product (near-identical photos; `lookalike duplicates` lists them)')
  .option('--group <style|column>', 'one result per style (the catalog\'s style_id, parent or item_group_id column; its other variants are listed beside it), or per value of a catalog column')
  .addOption(new Option('--search <method>', `exact (score every item), ann (approximate index, re-ranked exactly) or db (PostgreSQL + pgvector answers: --store only, backbone max pooling); default: the index's setting, else ann from ${ANN_MIN_ITEMS.toLocaleString('en-US')} items`).choices(['exact', 'ann', 'db']))
  .option('--text <words>', 'words matched against product names and attributes (full-text, stemmed, typos corrected), e.g. "navy polo"')
  .addOption(new Option('--text-mode <mode>', 'filter: only products matching every word (default); boost: matching products rank higher').choices([...TEXT_MODES]))
  .option('--json', 'print machine-readable JSON');

interface SearchFlags { index: string; k: number; threshold?: number; filter: string[]; pooling?: Pooling; mode?: string; search?: SearchMethod; text?: string; textMode?: TextMode; dedupe?: boolean; group?: string; json?: boolean }

/** The search options every search command shares, from its flags. */
function searchFlags(flags: SearchFlags, columns: string[]) {
  return {
    k: flags.k, threshold: flags.threshold, pooling: flags.pooling, mode: flags.mode, search: flags.search, text: flags.text, textMode: flags.textMode, dedupe: flags.dedupe, group: flags.group,
    filters: parseFilters(flags.filter, columns),
  };
}

const boxText = (r: { x: number; y: number; w: number; h: number }) => [r.x, r.y, r.w, r.h].map((v) => v.toFixed(2)).join(',');

function printResponse(response: SearchResponse, flags: SearchFlags, columns: string[]): void {
  const json = flags.json;
  const row = (r: SearchHit) => ({ id: r.id, rank: r.rank, score: r.score, ...r.metadata, image: r.image, ...(r.duplicates && { duplicates: r.duplicates }), ...(r.variants && { variants: r.variants }), ...(r.photo && { photo: r.photo }) });
  if (json) {
    printJson({
      query: response.query,
      space: response.space,
      ...(response.regions ? { regions: response.regions } : {}),
      results: response.results.map(row),
      ...(response.looks ? { looks: response.looks.map((l) => ({ box: l.box, results: l.results.map(row) })) } : {}),
    });
    return;
  }
  if (response.query.corrected) print(`(searched for "${response.query.corrected}": no product matched "${response.query.text}")`);
  printResults(response, flags, columns);
  for (const [i, look] of (response.looks ?? []).entries()) {
    print('');
    print(`region ${i + 1} (${boxText(look.box)}):`);
    printResults({ ...response, results: look.results }, flags, columns);
  }
}

function printResults(response: SearchResponse, flags: SearchFlags, columns: string[]): void {
  if (!response.results.length) {
    // Only suggest what was actually given: a tuned default threshold counts as given.
    const hints = [response.threshold !== undefined && 'lower --threshold', flags.filter.length > 0 && 'loosen --filter'].filter(Boolean);
    print(`No products${flags.filter.length ? ' match the filter' : ''}${response.threshold !== undefined ? ` above the threshold ${response.threshold}` : ''}.${hints.length ? ` Try to ${hints.join(' or ')}.` : ''}`);
    return;
  }
  const shown = SHOWN_COLUMNS.filter((c) => columns.includes(c));
  const cols = shown.length ? shown : columns.slice(0, 3);
  const hidden = response.results.some((r) => r.duplicates);
  const folded = response.results.some((r) => r.variants);
  const photos = response.results.some((r) => r.photo);
  print(table([
    ['rank', 'id', 'score', ...cols, ...(hidden ? ['near-duplicates hidden'] : []), ...(folded ? [`same ${response.query.groupedBy}`] : []), ...(photos ? ['photo matched'] : [])],
    ...response.results.map((r) => [
      String(r.rank), r.id, r.score.toFixed(4), ...cols.map((c) => r.metadata[c] ?? ''),
      ...(hidden ? [(r.duplicates ?? []).join(' ')] : []), ...(folded ? [(r.variants ?? []).map((v) => v.id).join(' ')] : []),
      ...(photos ? [r.photo ? `${r.photo.index + 1} of ${r.photo.of}${r.photo.view ? ` (${r.photo.view})` : ''}` : ''] : []),
    ]),
  ]));
}

export function registerCoreCommands(program: Command): void {
  program.command('index')
    .description('Embed a catalog (styles.csv + images/, or a folder of images) into an index. Incremental and resumable: rerun it after changes or an interruption.')
    .argument('<catalog>', 'catalog folder (read only; never written)')
    .addOption(indexOption())
    .addOption(envOption('--batch <n>', 'images per inference batch', 'LOOKALIKE_BATCH').argParser(intArg('batch', 1, 256)).default(INDEX_BATCH_SIZE))
    .addOption(envOption('--size <WxH>', `network input size, width x height (only when creating the index; default ${defaultSettings().width}x${defaultSettings().height}, as the reference; smaller is faster but finds the product in shoppers' photos less often)`, 'LOOKALIKE_SIZE'))
    .addOption(envOption('--precision <p>', `arithmetic of the network (only when creating the index; default ${defaultSettings().precision}): int8 gives the same vectors on every x86-64 CPU, recommends within 0.005 of fp32's precision@5 and indexes about twice as fast (README, "Same results on every CPU"); fp32 is the reference design's arithmetic`, 'LOOKALIKE_PRECISION').choices([...PRECISIONS]))
    .addOption(envOption('--resize <mode>', 'how photos become the input size: stretch (reference), pad to square, crop', 'LOOKALIKE_RESIZE').choices(['stretch', 'pad', 'crop']))
    .addOption(envOption('--pooling <kind>', 'default pooling for search (both are stored)', 'LOOKALIKE_POOLING').choices(['max', 'avg']))
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
        return queuedIndex({ catalogDir: catalog, location: flags.index, queue: flags.queue, settings, batchSize: flags.batch, allowRemove: flags.allowRemove, detach: flags.detach, json: flags.json, fetch });
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

  searchOptions(program.command('query')
    .description('Find catalog products that look like a photo. The product is found in the photo by itself (its cells of the feature map, then a second look at its box); --crop searches only the box you give. When the top result stands out, the rest are searched with its vector added (more like the product found). With --text and no photo: products matching the words, best match first.')
    .argument('[image]', 'a photo (jpg, png, webp); leave it out to search by --text alone')
    .option('--crop <x,y,w,h>', 'search only this part of the photo, relative to it (each 0..1), e.g. 0.1,0.2,0.5,0.6')
    .option('--no-expand', "search with the photo's own vector only (no expansion by the top result)")
    .option('--all-regions', 'shop the look: also search each region found in the photo on its own (one list per region)')
    .addHelpText('after', '\nExamples:\n  lookalike query photo.jpg -k 5\n  lookalike query photo.jpg --crop 0.5,0,0.5,1     # the right half\n  lookalike query photo.jpg --filter gender=Women --threshold 0.6 --json\n  lookalike query photo.jpg --text leather          # a photo plus words\n  lookalike query outfit.jpg --all-regions          # every product in the photo\n  lookalike query --text "navy shirts"              # words alone'))
    .action(action(async (image: string | undefined, flags: SearchFlags & { crop?: string; expand: boolean; allRegions?: boolean }) => {
      if (!image && flags.text === undefined) badOption('give a photo, or words to search for with --text.');
      if (!image && (flags.crop !== undefined || flags.allRegions)) badOption('--crop and --all-regions need a photo.');
      // An empty --crop '' is a mistake to report, not a crop to ignore.
      const crop = flags.crop !== undefined ? parseCrop(flags.crop) : undefined;
      await withIndex(flags.index, async (lookalike) => {
        const columns = lookalike.manifest.catalog.columns;
        if (!image) {
          printResponse(await lookalike.searchText(flags.text!, { k: flags.k, filters: parseFilters(flags.filter, columns) }), flags, columns);
          return;
        }
        const response = await lookalike.searchByImage(image, { ...searchFlags(flags, columns), label: image, crop, expand: flags.expand, shopTheLook: flags.allRegions });
        for (const warning of response.query.warnings ?? []) process.stderr.write(`lookalike: warning: ${warning}\n`);
        printResponse(response, flags, columns);
        if (!flags.json && response.regions?.length && !flags.allRegions) print(`regions found (try --crop or --all-regions): ${response.regions.map(boxText).join('  ')}`);
      });
    }));

  searchOptions(program.command('similar')
    .description('More like this: products that look like a catalog item (the item itself is excluded).')
    .argument('<id>', 'catalog item id')
    .addHelpText('after', '\nExample:\n  lookalike similar 15970 -k 5'))
    .action(action(async (id: string, flags: SearchFlags) => {
      await withIndex(flags.index, async (lookalike) => {
        const response = await lookalike.searchById(id, searchFlags(flags, lookalike.manifest.catalog.columns));
        printResponse(response, flags, lookalike.manifest.catalog.columns);
      });
    }));

  program.command('export')
    .description('Write the index as CSV: embeddings (id, then one column per dimension) and/or metadata (all columns). "-" writes to stdout.')
    .addOption(indexOption())
    .option('--embeddings <file>', 'embeddings CSV (the vectors search uses, L2-normalised)')
    .option('--metadata <file>', 'metadata CSV')
    .option('--raw', 'export raw backbone features instead of the normalised search vectors')
    .addOption(new Option('--pooling <kind>', 'pooling of the exported features').choices(['max', 'avg']))
    .option('--mode <mode>', 'similarity mode when the index has a trained head')
    .addHelpText('after', '\nExample:\n  lookalike export --embeddings emb.csv --metadata meta.csv')
    .action(action(async (flags: { index: string; embeddings?: string; metadata?: string; raw?: boolean; pooling?: Pooling; mode?: string }) => {
      if (!flags.embeddings && !flags.metadata) badOption('say what to export: --embeddings FILE and/or --metadata FILE.');
      await withIndex(flags.index, async (lookalike) => {
        const { engine, manifest } = lookalike;
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

  searchOptions(program.command('recommend')
    .description('With --like: products like the liked examples and unlike the --unlike ones (catalog ids or photos), the examples themselves left out. Without --like: the top-k similar products of every catalog item, as CSV (query_id, rank, id, score).')
    .option('--like <ids>', 'liked examples, comma-separated: catalog ids, or photo files (repeatable)', collect, [])
    .option('--unlike <ids>', 'disliked examples ("not this"), as --like (repeatable)', collect, [])
    .addOption(new Option('--strategy <way>', 'how examples combine: average (default), best_score, sum_scores (docs/asking.md)').choices([...RECOMMEND_STRATEGIES]))
    .option('-o, --out <file>', 'without --like: output CSV ("-" for stdout)', 'recommendations.csv')
    .addHelpText('after', '\nExamples:\n  lookalike recommend --like 15970,39386,21379 --unlike 59263 -k 10\n  lookalike recommend --like photo.jpg --unlike 59263\n  lookalike recommend -k 5 --out recommendations.csv   # every item\'s neighbours'))
    .action(action(async (flags: SearchFlags & { like: string[]; unlike: string[]; strategy?: RecommendStrategy; out: string }) => {
      const like = flags.like.flatMap(splitList), unlike = flags.unlike.flatMap(splitList);
      if (!like.length && unlike.length) badOption('--unlike needs --like: say what you like as well.');
      if (!like.length && (flags.filter.length || flags.threshold !== undefined || flags.text !== undefined || flags.strategy || flags.search || flags.json)) {
        badOption('--filter, --threshold, --text, --search, --strategy and --json go with --like; the CSV of every item\'s neighbours takes -k, --pooling, --mode and --out.');
      }
      await withIndex(flags.index, async (lookalike) => {
        if (like.length) {
          const example = (value: string): Example => (lookalike.engine.has(value) || !existsSync(value) ? { id: value } : { image: value, label: value });
          const response = await lookalike.recommend({ ...searchFlags(flags, lookalike.manifest.catalog.columns), like: like.map(example), unlike: unlike.map(example), strategy: flags.strategy });
          printResponse(response, flags, lookalike.manifest.catalog.columns);
          return;
        }
        const k = flags.k ?? DEFAULT_K;
        const bar = progressBar('recommending', 'items');
        bar.start(lookalike.engine.size);
        const started = performance.now();
        const rec = await lookalike.recommendAll(k, {
          pooling: flags.pooling, mode: flags.mode,
          onProgress: (done) => bar.update(done, done / ((performance.now() - started) / 1000)),
        });
        bar.stop();
        const rows: string[][] = [];
        for (let q = 0; q < rec.ids.length; q++) {
          for (let j = 0; j < rec.k; j++) {
            const row = rec.rows[q * rec.k + j];
            if (row < 0) continue;
            rows.push([rec.ids[q], String(j + 1), rec.ids[row], String(rec.scores[q * rec.k + j])]);
          }
        }
        await writeCsv(flags.out, ['query_id', 'rank', 'id', 'score'], rows);
        if (flags.out !== '-') process.stderr.write(`wrote ${rows.length} recommendations for ${rec.ids.length} items to ${flags.out} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      });
    }));

  program.command('copy')
    .description('Copy an index to another store without re-embedding: a folder into PostgreSQL (or back). Resumable: rerun to finish.')
    .argument('<from>', 'index folder, or postgres://USER@HOST:PORT/DATABASE#NAME')
    .argument('<to>', 'index folder, or postgres://USER@HOST:PORT/DATABASE#NAME')
    .option('--first <n>', 'only the first n items (a sample, e.g. for a benchmark)', intArg('first'))
    .addHelpText('after', '\nExample:\n  lookalike copy .lookalike postgres://shop@db:5432/shop#main')
    .action(action(async (from: string, to: string, flags: { first?: number }) => {
      const r = await copyIndex(checkedLocation(from), checkedLocation(to), (m) => process.stderr.write(`${m}\n`), flags.first);
      print(`copied ${describeLocation(from)} -> ${describeLocation(to)}: ${r.items} items, ${r.copied} vectors written, ${r.removed} removed, in ${r.seconds.toFixed(1)} s`);
    }));

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
      const search = counts.embedded ? await withIndex(flags.index, async (lookalike) => {
        const space = lookalike.space();
        const ann = lookalike.engine.annStatus(space);
        return {
          setting: searchSettingOf(lookalike.manifest),
          method: lookalike.engine.method(),
          space: space.id,
          ann: ann.meta && { file: ann.file, upToDate: ann.current, recallAt10: ann.meta.recallAt10, recallQueries: ann.meta.recallQueries, settings: ann.meta.settings },
        };
      }) : undefined;
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

/** Writes rows as RFC 4180 CSV to a file, or to stdout for "-". */
export async function writeCsv(file: string, header: string[], rows: Iterable<string[]>): Promise<void> {
  const out = file === '-' ? process.stdout : createWriteStream(file);
  const csv = stringify({ header: true, columns: header });
  csv.pipe(out, { end: file !== '-' });
  for (const row of rows) {
    if (!csv.write(row)) await new Promise((resolve) => csv.once('drain', resolve));
  }
  csv.end();
  await new Promise<void>((resolve, reject) => {
    if (file === '-') csv.on('end', resolve);
    else (out as NodeJS.WritableStream).on('finish', resolve);
    csv.on('error', reject);
    out.on('error', reject);
  });
}

/** "a,b, c" as ["a", "b", "c"]. */
function splitList(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter(Boolean);
}

/** A stratified sample of the catalog by articleType (the whole catalog's mix, in small). */
async function sampleIds(catalogDir: string, size: number): Promise<string[]> {
  const { items } = await readCatalog(catalogDir);
  return stratifiedSample(items.map((i) => ({ id: i.id, value: i.metadata[SAMPLE_STRATA] ?? '' })), size);
}

/** A copy end as given: a folder, or a PostgreSQL location checked before anything is opened. */
function checkedLocation(location: string): string {
  if (isStoreUrl(location)) parseLocation(location);
  return location;
}
