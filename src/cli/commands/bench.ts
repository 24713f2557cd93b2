import { INDEX_BATCH_SIZE } from '../../defaults.js';
import { runCoreBench } from '../../bench/core.js';
import { devCatalogDir } from '../../paths.js';
import { action, indexOption, intArg, print, printJson, table, type Command } from '../shared.js';

export function registerBenchCommand(program: Command): void {
  program.command('bench')
    .description('Measure indexing throughput, query latency (embed + search) and search-only time against a plain per-item JavaScript loop, on an existing index.')
    .addOption(indexOption())
    .option('--catalog <dir>', 'catalog to time indexing on (a temporary index is used)', devCatalogDir())
    .option('--items <n>', 'items to index for the throughput figure', intArg('items'), 400)
    .option('--queries <n>', 'queries to time', intArg('queries'), 50)
    .option('--batch <n>', 'inference batch size', intArg('batch', 1, 256), INDEX_BATCH_SIZE)
    .option('--json', 'print JSON')
    .action(action(async (flags: { index: string; catalog: string; items: number; queries: number; batch: number; json?: boolean }) => {
      const r = await runCoreBench({ indexDir: flags.index, catalogDir: flags.catalog, indexItems: flags.items, queries: flags.queries, batch: flags.batch, log: (m) => process.stderr.write(`${m}\n`) });
      if (flags.json) return printJson(r);
      print(`catalog in index: ${r.catalogItems} items`);
      print(table([
        ['measure', 'lookalike', 'baseline (per-item JS loop)', 'ratio'],
        ['indexing throughput', `${r.indexing.imagesPerSecond.toFixed(1)} images/s (${r.indexing.items} items, batch ${r.indexing.batch})`, '', ''],
        ['query latency p50 (decode+embed+search)', `${r.query.p50ms.toFixed(1)} ms`, '', ''],
        ['query latency p95', `${r.query.p95ms.toFixed(1)} ms`, '', ''],
        ['search only, per query (onnxruntime GEMM, used for image queries)', `${r.searchOnly.onnxMs.toFixed(2)} ms`, `${r.searchOnly.baselineMs.toFixed(2)} ms`, `${r.searchOnly.onnxSpeedup.toFixed(1)}x faster`],
        ['search only, per query (JS kernel, used for similar)', `${r.searchOnly.kernelMs.toFixed(2)} ms`, `${r.searchOnly.baselineMs.toFixed(2)} ms`, `${r.searchOnly.speedup.toFixed(1)}x faster`],
      ]));
      print(`same top-5 as the baseline on all ${r.searchOnly.runs} queries, both kernels: ${r.searchOnly.sameResults ? 'yes' : 'NO'}`);
    }));
}
