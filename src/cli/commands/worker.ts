/**
 * `lookalike worker`: embed the batches `index --queue` queued (the queue code, ../queued.ts,
 * is loaded when it runs).
 */
import { WORKER_DEFAULTS } from '../../defaults.js';
import { logFormatOption, logLevelOption } from '../log.js';
import { allowHostOption, catalogRootOption, envOption, indexOption, queueOption } from '../options.js';
import type { WorkerFlags } from '../queued.js';
import { action, intArg, type Command } from '../shared.js';

export function registerWorkerCommand(program: Command): void {
  program.command('worker')
    .description('Embed the batches `lookalike index --queue` queued for an index, into its store. Run any number, on any machines, at any time; Ctrl-C (SIGTERM) finishes the batches in hand first.')
    .addOption(indexOption())
    .addOption(queueOption())
    .addOption(envOption('--concurrency <n>', 'batches in hand at once (one decodes while another is in the network)', 'LOOKALIKE_WORKER_CONCURRENCY').argParser(intArg('concurrency', 1, 16)).default(WORKER_DEFAULTS.concurrency))
    .addOption(catalogRootOption())
    .addOption(allowHostOption())
    .addOption(envOption('--metrics-port <n>', 'serve Prometheus metrics at http://HOST:PORT/metrics (0 picks a free port; default: none)', 'LOOKALIKE_METRICS_PORT').argParser(intArg('metrics-port', 0, 65535)))
    .addOption(envOption('--metrics-host <address>', 'address the metrics listener binds (0.0.0.0 for every interface)', 'LOOKALIKE_METRICS_HOST').default('127.0.0.1'))
    .addOption(logFormatOption())
    .addOption(logLevelOption())
    .addHelpText('after', '\nExample:\n  lookalike worker --store postgres://me@db:5432/shop --index main --queue redis://queue:6379 --metrics-port 9464')
    .action(action(async (flags: WorkerFlags) => (await import('../queued.js')).runWorker(flags)));
}
