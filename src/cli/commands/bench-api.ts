/**
 * `lookalike bench-api`: latency of POST /api/search and the server's peak memory (the
 * lab's benchmark, lab/bench/api.ts, is loaded when it runs).
 */
import { Option } from 'commander';
import { DEFAULT_K, MAX_K_HTTP } from '../../defaults.js';
import { SEARCH_SETTINGS, type SearchSetting } from '../../search/engine.js';
import { indexOption } from '../options.js';
import { action, intArg, print, printJson, table, type Command } from '../shared.js';

export function registerBenchApiCommand(program: Command): void {
  program.command('bench-api')
    .description('Latency of POST /api/search (photo upload to JSON) against a real server in a child process, and the peak memory of that server.')
    .addOption(indexOption())
    .option('--requests <n>', 'searches to time', intArg('requests', 1, 100_000), 200)
    .option('--concurrency <n>', 'requests in flight at once', intArg('concurrency', 1, 64), 1)
    .option('--k <n>', 'results per search', intArg('k', 1, MAX_K_HTTP), DEFAULT_K)
    .addOption(new Option('--search <method>', 'the server\'s search setting (serve --search)').choices([...SEARCH_SETTINGS]))
    .option('--json', 'print JSON')
    .action(action(async (flags: { index: string; requests: number; concurrency: number; k: number; search?: SearchSetting; json?: boolean }) => {
      const { runApiBench } = await import('../../lab/bench/api.js');
      const r = await runApiBench({ indexDir: flags.index, requests: flags.requests, concurrency: flags.concurrency, k: flags.k, search: flags.search, log: (m) => process.stderr.write(`${m}\n`) });
      if (flags.json) return printJson(r);
      print(`index: ${r.indexDir} (${r.items.toLocaleString('en-US')} items); ${r.requests} uploads of catalog photos, concurrency ${r.concurrency}, k=${r.k}${flags.search ? `, serve --search ${flags.search}` : ''}`);
      print(table([
        ['measure', 'value'],
        ['server start-up (process start to listening)', `${r.startup.listeningSeconds.toFixed(2)} s`],
        ['server ready (model + vectors loaded)', `${r.startup.readySeconds.toFixed(2)} s`],
        ['server RSS once ready, before the first request', `${r.memory.idleRssMiB.toFixed(0)} MiB`],
        ['POST /api/search latency p50', `${r.latency.p50ms.toFixed(1)} ms`],
        ['POST /api/search latency p90', `${r.latency.p90ms.toFixed(1)} ms`],
        ['POST /api/search latency p99', `${r.latency.p99ms.toFixed(1)} ms`],
        ['POST /api/search latency max', `${r.latency.maxMs.toFixed(1)} ms`],
        ['throughput', `${r.throughput.toFixed(1)} searches/s`],
        ['server peak RSS during the run (sampled every 50 ms)', `${r.memory.peakRssDuringRunMiB.toFixed(0)} MiB`],
        ['server peak RSS over its life (VmHWM)', `${r.memory.vmHwmMiB.toFixed(0)} MiB`],
        ['answers other than 200', String(r.errors)],
      ]));
    }));
}
