import { INDEX_BATCH_SIZE } from '../../defaults.js';
import type { Timing } from '../../lab/bench/ann.js';
import { Option } from 'commander';
import { devCatalogDir } from '../../paths.js';
import { describeLocation } from '../../store/location.js';
import { indexOption } from '../options.js';
import { action, floatArg, intArg, print, printJson as printJsonPlain, table, type Command } from '../shared.js';
import { cpuLine, describeCpu, int8KernelsSaturate } from '../../model/cpu.js';
import os from 'node:os';

const ms = (t: Timing) => `${t.p50ms.toFixed(3)} / ${t.p99ms.toFixed(3)} ms`;
const bytes = (b: number) => `${Math.round(b).toLocaleString('en-US')} B`;

export function registerBenchCommand(program: Command): void {
  program.command('bench')
    .description('Measure indexing throughput, query latency (embed + search) and search-only time against a plain per-item JavaScript loop, on an existing index. '
      + 'With --ann: exact against approximate search side by side; with --synthetic N: the approximate index on N items drawn around the index\'s real vectors.')
    .addOption(indexOption())
    .option('--catalog <dir>', 'catalog to time indexing on (a temporary index is used)', devCatalogDir())
    .option('--items <n>', 'images to index for the throughput figures (the same ones for each pipeline)', intArg('items'), 480)
    .option('--rounds <n>', 'indexing: best of this many runs of each pipeline', intArg('rounds', 1, 10), 2)
    .option('--queries <n>', 'queries to time', intArg('queries'))
    .option('--batch <n>', 'inference batch size', intArg('batch', 1, 256), INDEX_BATCH_SIZE)
    .option('--ann', 'search only: exact (GEMM), exact (JS) and ANN p50/p99 and recall@10 on the index (opened read-only)')
    .option('--synthetic <n>', 'search only, on n synthetic items around the index\'s real vectors (in the served space): ANN build time, load time and memory of a fresh serving process, p50/p99, recall@10', intArg('synthetic', 1000, 20_000_000))
    .option('--noise <x>', 'synthetic items: norm of the noise added to a unit real vector', floatArg('noise', 0, 10), 0.35)
    .option('--queue <url>', 'indexing through the job queue at this Redis (redis://HOST:6379): per-item cost against in process on the same --items, throughput with 1 and 2 workers, a projection for 1,000,000 images')
    .option('--db-search', '--search db (PostgreSQL + pgvector) against exact search on the same items: recall@10 and latency')
    .option('--store-load', 'what a replica pays to load the index into memory from its store (folder or --store), cold; for PostgreSQL COPY BINARY against a plain SELECT')
    .addOption(new Option('--serve-probe <dir>').hideHelp())
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  lookalike bench\n  lookalike bench --ann\n  lookalike bench --synthetic 1000000\n  lookalike bench --queue redis://127.0.0.1:6379 --items 160\n  lookalike bench --queue redis://127.0.0.1:6379 --store postgres://postgres@127.0.0.1:5432/test   # the queue + PostgreSQL path')
    .action(action(async (flags: { index: string; catalog: string; items: number; rounds: number; queries?: number; batch: number; queue?: string; ann?: boolean; synthetic?: number; noise: number; serveProbe?: string; storeLoad?: boolean; dbSearch?: boolean; store?: string; json?: boolean }) => {
      const { runCoreBench } = await import('../../lab/bench/core.js');
      const { runQueueBench } = await import('../../lab/bench/queue.js');
      const { runIndexSearchBench, runServingProbe, runSyntheticBench } = await import('../../lab/bench/ann.js');
      const { runDbSearchBench, runStoreBench } = await import('../../lab/bench/store.js');
      const log = (m: string) => process.stderr.write(`${m}\n`);
      if (flags.serveProbe) return printJsonPlain(runServingProbe(flags.serveProbe));
      // Every figure names the machine it was taken on: the CPU, whether its int8 kernels sum
      // exactly (VNNI) or in saturating int16 pairs, and how loaded it was (shared machines).
      const saturates = await int8KernelsSaturate();
      const machine = { cpu: describeCpu(), int8PairSums: saturates ? 'int16, saturating (no VNNI)' : 'exact', loadBefore: os.loadavg() };
      const printJson = (r: object) => printJsonPlain({ machine: { ...machine, loadAfter: os.loadavg() }, ...r });
      const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
      if (!flags.json) {
        print(`machine: ${cpuLine(machine.cpu)}; int8 pair sums ${machine.int8PairSums}; load average ${load(machine.loadBefore)} (1, 5, 15 min) before`);
        process.on('exit', () => print(`load average after: ${load(os.loadavg())}`));
      }
      if (flags.dbSearch) {
        const r = await runDbSearchBench(flags.index, { queries: flags.queries });
        if (flags.json) return printJson(r);
        print(`store: ${r.location}: ${r.items.toLocaleString('en-US')} items, ${r.queries} queries (catalog items, themselves excluded), k=${r.k}, backbone:max`);
        print(table([
          ['search', 'p50 / p99', `recall@${r.k} vs exact`],
          ['exact, in the replica (JS kernel)', `${r.exact.p50ms.toFixed(2)} / ${r.exact.p99ms.toFixed(2)} ms`, '1'],
          ['--search db (pgvector HNSW, halfvec, in SQL)', `${r.db.p50ms.toFixed(2)} / ${r.db.p99ms.toFixed(2)} ms`, r.recallAtK.toFixed(4)],
          [`--search db, filter ${r.filtered.filter}`, `${r.filtered.p50ms.toFixed(2)} ms p50`, r.filtered.recallAtK.toFixed(4)],
        ]));
        return;
      }
      if (flags.storeLoad) {
        const r = await runStoreBench(flags.index);
        if (flags.json) return printJson(r);
        print(`store: ${describeLocation(r.location)} (${r.kind}): ${r.items.toLocaleString('en-US')} items, vectors ${r.kinds.join(' + ')} (${(r.bytes / 2 ** 20).toFixed(0)} MiB)`);
        print(table([
          ['measure', 'seconds'],
          ['open (connect or file, items, manifest)', r.openSeconds.toFixed(2)],
          [r.kind === 'postgres' ? 'vectors into memory (COPY BINARY)' : 'vectors into memory (flat cache, else rows)', r.loadSeconds.toFixed(2)],
          ['open to vectors in memory', r.totalSeconds.toFixed(2)],
          ...(r.selectSeconds !== undefined ? [['the same vectors by plain SELECT (hex bytea)', `${r.selectSeconds.toFixed(2)} (${(r.selectSeconds / r.loadSeconds).toFixed(1)}x COPY BINARY)`]] : []),
          ['process RSS after loading', `${r.rssMiB.toFixed(0)} MiB`],
        ]));
        return;
      }
      if (flags.queue) {
        const queueUrl = flags.queue;
        const r = await runQueueBench({
          catalogDir: flags.catalog, queue: queueUrl, items: flags.items, batch: flags.batch, log, store: flags.store,
          workerCommand: (dir) => ({ command: process.execPath, args: [...process.execArgv, process.argv[1], 'worker', '--index', dir, '--queue', queueUrl] }),
        });
        if (flags.json) return printJson(r);
        const f = (x: number) => x.toFixed(1);
        print(`${r.items} items of ${flags.catalog}, batch ${r.batch}, store: ${r.store}`);
        print(table([
          ['path', 'ms per item', 'images/s'],
          ['in process (lookalike index)', f(r.inProcess.msPerItem), f(r.inProcess.imagesPerSecond)],
          ['queue + store (1 worker, this process)', f(r.queued.msPerItem), f(r.queued.imagesPerSecond)],
        ]));
        print(`worker time per item (wall, in a worker): prepare ${f(r.queued.split.prepareMs)} ms (overlapped with the network), CNN ${f(r.queued.split.cnnMs)} ms, store write ${r.queued.split.storeMs.toFixed(2)} ms, queue bookkeeping ${r.queued.split.queueMs.toFixed(2)} ms (both also wait for the CPU the other batch's network holds)`);
        print(`measured alone, per item: store write ${r.alone.storeMs.toFixed(2)} ms, queue bookkeeping ${r.alone.queueMs.toFixed(3)} ms`);
        print(`overhead as a share of the CNN time per item: end to end ${(100 * r.overhead.endToEndShareOfCnn).toFixed(1)}%, store + queue measured alone ${(100 * r.overhead.storeAndQueueShareOfCnn).toFixed(1)}% (goal <= 5%)`);
        print(table([['worker processes', 'images/s'], ...r.workers.map((w) => [String(w.workers), f(w.imagesPerSecond)])]));
        print(`one store takes ${r.storeItemsPerSecond.toFixed(0)} items/s of writes; images average ${(r.meanImageBytes / 1024).toFixed(1)} KiB, so a machine at ${f(r.workers[0].imagesPerSecond)} images/s fetches ${((r.workers[0].imagesPerSecond * r.meanImageBytes * 8) / 1e6).toFixed(1)} Mbit/s`);
        print(table([['machines', 'wall time for 1,000,000 images', 'limited by'], ...r.projection.map((p) => [String(p.machines), p.hours >= 1 ? `${p.hours.toFixed(1)} h` : `${Math.round(p.hours * 60)} min`, p.limit])]));
        return;
      }
      if (flags.synthetic) {
        const r = await runSyntheticBench({
          indexDir: flags.index, items: flags.synthetic, noise: flags.noise, queries: flags.queries, log,
          // The same CLI in a fresh process (node flags kept, e.g. a TypeScript loader).
          probeCommand: (dir) => ({ command: process.execPath, args: [...process.execArgv, process.argv[1], 'bench', '--serve-probe', dir] }),
        });
        if (flags.json) return printJson(r);
        print(`synthetic catalog: ${r.items.toLocaleString('en-US')} items around ${r.baseItems} real vectors of ${flags.index} (${r.space}, ${r.dim}-d, noise ${r.noise}), ${r.queries} queries, k=${r.k}`);
        print(table([
          ['measure', 'exact (GEMM, float32 in memory)', 'ann (float16 HNSW, re-ranked exactly)'],
          ['search p50 / p99', ms(r.exactGemm), ms(r.serving.ann)],
          [`recall@${r.k} vs exact`, '1', r.serving.ann.recallAtK.toFixed(4)],
          [`mean cosine of the ${r.k}th neighbour`, `real catalog ${r.neighbourCosAtK.real.toFixed(3)}`, `synthetic ${r.neighbourCosAtK.synthetic.toFixed(3)}`],
          ['build', '-', `${r.build.seconds.toFixed(1)} s (${r.build.itemsPerSecond.toFixed(0)} items/s)`],
          ['server load', '-', `${r.serving.loadSeconds.toFixed(2)} s`],
          ['serving process memory (RSS)', `${((r.items * r.dim * 4) / 1048576).toFixed(0)} MB for the vectors alone`, `${r.serving.rssAfterQueriesMB.toFixed(0)} MB (${r.serving.rssBeforeMB.toFixed(0)} MB before loading)`],
          ['bytes per item in memory', bytes(r.bytesPerItem.exactInMemory), bytes(r.bytesPerItem.annInMemory)],
          ['bytes per item on disk', bytes(r.bytesPerItem.fullVectorsOnDisk), `${bytes(r.bytesPerItem.annOnDisk)} + the full vectors`],
        ]));
        return;
      }
      if (flags.ann) {
        const r = await runIndexSearchBench({ indexDir: flags.index, queries: flags.queries, log });
        if (flags.json) return printJson(r);
        print(`index: ${flags.index}: ${r.items} items, ${r.queries} queries (catalog items, themselves excluded), k=${r.k}; ann ${JSON.stringify(r.settings)}`);
        print(table([
          ['space', 'exact GEMM p50 / p99', 'exact JS p50 / p99', 'ann p50 / p99', `ann recall@${r.k}`, 'ann from files p50 / p99', `recall@${r.k}`, 'build / load', 'bytes/item in memory: exact vs ann'],
          ...r.spaces.map((x) => [
            `${x.space} (${x.dim}-d)`, ms(x.exactGemm), ms(x.exactJs), ms(x.ann), x.ann.recallAtK.toFixed(4), x.annFromFiles ? ms(x.annFromFiles) : 'via its parts', x.annFromFiles ? x.annFromFiles.recallAtK.toFixed(4) : '-',
            x.annFromFiles ? `${x.build.seconds.toFixed(1)} s / ${x.build.loadSeconds.toFixed(2)} s` : '-', `${bytes(x.bytesPerItem.exactInMemory)} vs ${bytes(x.bytesPerItem.annInMemory)}`,
          ]),
        ]));
        print(table([
          ['filter (default space)', 'items', 'ann mean', 'same ids as exact'],
          ...r.filtered.map((f) => [f.filter, String(f.rows), `${f.annMs.toFixed(3)} ms`, `${(f.sameIdsAsExact * 100).toFixed(0)}%`]),
        ]));
        print(`bytes per item on disk: store ${bytes(r.storeBytesPerItem)}; per ANN space, ${r.spaces.map((x) => `${x.space}: graph ${bytes(x.bytesPerItem.annInMemory)} + rows ${bytes(x.bytesPerItem.rowsOnDisk)}`).join('; ')}`);
        return;
      }
      const r = await runCoreBench({ indexDir: flags.index, catalogDir: flags.catalog, indexItems: flags.items, queries: flags.queries ?? 50, batch: flags.batch, rounds: flags.rounds, log });
      if (flags.json) return printJson(r);
      const ix = r.indexing;
      const run = (x: typeof ix.runs.default) => [x.label, x.settings, `${x.imagesPerSecond.toFixed(1)} images/s`, `${x.seconds.toFixed(1)} s`];
      print(`indexing: the same ${ix.images} images, batch ${ix.batch}, best of ${ix.rounds}; from the call to the last vector written (model load, catalog, int8 calibration included)`);
      print(table([
        ['pipeline', 'model', 'throughput', 'time'],
        run(ix.runs.default), run(ix.runs.fp32), run(ix.runs.plain),
      ]));
      print(`${ix.runs.default.settings} vs the float32 224x224 index (the default): ${ix.speedup.vsFp32.toFixed(2)}x; vs the plain pipeline: ${ix.speedup.vsPlain.toFixed(2)}x`);
      print(`cosine int8 vs float32, max pooling, same images: at the same size min ${ix.cosine.sameSize.min.toFixed(4)}, median ${ix.cosine.sameSize.median.toFixed(4)}; ${ix.runs.default.settings} vs float32 224x224 min ${ix.cosine.vsFp32At224.min.toFixed(4)}, median ${ix.cosine.vsFp32At224.median.toFixed(4)}`);
      print(`int8 model time by operator (onnxruntime profile): ${ix.int8Ops.slice(0, 8).map((o) => `${o.op} ${(o.share * 100).toFixed(1)}% (${o.nodes})`).join(', ')}`);
      print(`catalog in index: ${r.catalogItems} items (${r.model})`);
      print(table([
        ['measure', 'lookalike', 'baseline (per-item JS loop)', 'ratio'],
        ['query latency p50 (decode+embed+search)', `${r.query.p50ms.toFixed(1)} ms`, '', ''],
        ['query latency p95', `${r.query.p95ms.toFixed(1)} ms`, '', ''],
        [`shopper photo p50 / p95, default (zoom: ${r.shopperPhoto.zoomed}/${r.shopperPhoto.runs}, expanded: ${r.shopperPhoto.expanded}/${r.shopperPhoto.runs})`, `${r.shopperPhoto.default.p50ms.toFixed(1)} / ${r.shopperPhoto.default.p95ms.toFixed(1)} ms`, `one pass, no expansion: ${r.shopperPhoto.onePass.p50ms.toFixed(1)} / ${r.shopperPhoto.onePass.p95ms.toFixed(1)} ms`, `${(r.shopperPhoto.default.p50ms / r.shopperPhoto.onePass.p50ms).toFixed(2)}x`],
        ['search only, per query (onnxruntime GEMM, used for image queries)', `${r.searchOnly.onnxMs.toFixed(2)} ms`, `${r.searchOnly.baselineMs.toFixed(2)} ms`, `${r.searchOnly.onnxSpeedup.toFixed(1)}x faster`],
        ['search only, per query (JS kernel, used for similar)', `${r.searchOnly.kernelMs.toFixed(2)} ms`, `${r.searchOnly.baselineMs.toFixed(2)} ms`, `${r.searchOnly.speedup.toFixed(1)}x faster`],
      ]));
      print(`same top-5 as the baseline on all ${r.searchOnly.runs} queries, both kernels (equal scores in either order): ${r.searchOnly.sameResults ? 'yes' : 'NO'}`);
    }));
}
