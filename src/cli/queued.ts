/**
 * Indexing through a job queue, loaded only by the commands that use it (`index --queue`,
 * `worker`, `status`), so that no other command loads BullMQ and Redis's client: queue
 * the work, then watch it; embed what is queued; the progress of the last queued run.
 */
import { Queue } from 'bullmq';
import { ENV } from '../defaults.js';
import { isLookalikeError, LookalikeError } from '../errors.js';
import { summarizeProblems } from '../catalog/index.js';
import { checkReachable, connect, KEY_PREFIX, parseQueueUrl, queueNameFor } from '../queue/connection.js';
import { enqueueIndex, type EnqueueOptions } from '../queue/enqueue.js';
import { runProgress, type RunProgress } from '../queue/run.js';
import { startWorker } from '../queue/worker.js';
import { describeLocation, redact } from '../store/location.js';
import { openStore } from '../store/open.js';
import { fetchOptionsOf, print, printJson, progressBar } from './shared.js';
import { createLogger, type LogFormat, type LogLevel } from './log.js';
import { listenForMetrics, processRegistry, type MetricsListener } from '../server/metrics-listener.js';

const POLL_MS = 1000;
/**
 * How long a run may wait for its first worker before `index` says so: workers started
 * before the index existed check for it every few seconds and then load the model, so
 * "no worker" in the first seconds is only a worker on its way.
 */
const NO_WORKER_WARN_MS = 20_000;

/** `index --queue`: queue what changed, then (unless detached) one bar over all workers. */
export async function queuedIndex(options: EnqueueOptions & { detach?: boolean; json?: boolean }): Promise<void> {
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const report = await enqueueIndex({ ...options, log });
  if (!options.json) {
    print(`catalog: ${report.catalog.root} (${report.catalog.kind}, ${report.catalog.items} items)`);
    if (report.catalog.problems.length) print(summarizeProblems(report.catalog.problems));
    print(`index: ${describeLocation(options.location)}: queued ${report.queued} item(s) in ${report.jobs} batch(es)${report.changed ? ` (${report.changed} with a changed image)` : ''}, ${report.unchanged} unchanged, -${report.removed} removed`);
  }
  if (options.detach || report.jobs === 0) {
    if (options.json) printJson(report);
    else if (report.jobs) print('detached: workers (`lookalike worker`) embed the batches; `lookalike status` shows the progress.');
    return;
  }
  const final = await watch(options.location, options.queue, report.run);
  if (options.json) return printJson({ ...report, progress: final });
  printSummary(final);
  await printFailures(options.location);
}

async function watch(location: string, queueUrl: string, run: string): Promise<RunProgress> {
  const target = parseQueueUrl(queueUrl);
  const name = await queueNameFor(location, { create: true });
  const redis = connect(target, true);
  const queue = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
  const bar = progressBar('indexing', 'img');
  let started = false, warned = false;
  const since = Date.now();
  try {
    for (;;) {
      const p = await runProgress(redis, queue, name);
      if (!p || p.id !== run) throw new LookalikeError('QUEUE_NO_RUN', { index: describeLocation(location), server: target.server });
      if (!started) { bar.start(p.total); started = true; }
      bar.update(p.done + p.failed, p.rate);
      if (!warned && !p.finished && !p.workers && !p.startedAt && Date.now() - since > NO_WORKER_WARN_MS) {
        process.stderr.write(`\nno worker has taken a batch in ${NO_WORKER_WARN_MS / 1000} s: start \`lookalike worker --queue ${redact(queueUrl)}\` with the same --store/--index (Ctrl-C leaves the run queued).\n`);
        warned = true;
      }
      if (p.finished) return p;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    bar.stop();
    await queue.close();
    redis.disconnect();
  }
}

function printSummary(p: RunProgress): void {
  const seconds = p.startedAt && p.lastAt ? (p.lastAt - p.startedAt) / 1000 : 0;
  print(`run ${p.id}: ${p.done} embedded, ${p.failed} failed of ${p.total}` + (seconds ? ` in ${seconds.toFixed(1)} s, ${p.rate.toFixed(1)} images/s` : '')
    + (p.finished ? '' : `; ${p.waiting} batch(es) waiting, ${p.active} in work, ${p.delayed} waiting to retry, ${p.workers} worker(s), ETA ${p.etaSeconds ?? '?'} s`));
}

async function printFailures(location: string): Promise<void> {
  const store = await openStore(location, { readonly: true });
  try {
    const failed = store.failures();
    if (!failed.length) return;
    print(`skipped ${failed.length} unreadable image(s):`);
    for (const f of failed.slice(0, 10)) print(`  ${f.id}: ${f.reason}`);
    if (failed.length > 10) print(`  ... and ${failed.length - 10} more (lookalike info)`);
  } finally {
    await store.close();
  }
}

export type WorkerFlags = { index: string; queue?: string; concurrency: number; catalogRoot?: string; metricsPort?: number; metricsHost: string; logFormat: LogFormat; logLevel: LogLevel; allowHost?: string[] };

/** `lookalike worker`: embeds queued batches until SIGINT or SIGTERM. */
export async function runWorker(flags: WorkerFlags): Promise<void> {
  if (!flags.queue) throw new LookalikeError('BAD_OPTION', { message: `say which Redis holds the queue: --queue redis://HOST:6379 (or set ${ENV.queue}).` });
  parseQueueUrl(flags.queue);
  const fetch = fetchOptionsOf(flags);
  const logger = createLogger('worker', flags.logFormat, flags.logLevel);
  const log = (m: string) => logger.info(m);
  const registry = processRegistry();
  let metrics: MetricsListener | undefined;
  if (flags.metricsPort !== undefined) {
    metrics = await listenForMetrics(registry, { port: flags.metricsPort, host: flags.metricsHost });
    log(`metrics: ${metrics.url}`);
  }
  // A worker may start before the first `index --queue` made the index: it waits for it.
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  let stopRequested = false;
  const onSignal = () => {
    stopRequested = true;
    log('stopping: finishing the batches in hand...');
    void worker?.close();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let waited = false; !worker && !stopRequested;) {
      try {
        worker = await startWorker({ location: flags.index, queue: flags.queue, log, concurrency: flags.concurrency, catalogRoot: flags.catalogRoot, registry, fetch });
      } catch (err) {
        if (!isLookalikeError(err, 'INDEX_NOT_FOUND')) throw err;
        if (!waited) log(`no index at ${describeLocation(flags.index)} yet: waiting for \`lookalike index CATALOG --queue ...\` to create it`);
        waited = true;
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
    if (stopRequested) await worker?.close();
    await worker?.stopped;
    log('stopped');
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await metrics?.close();
  }
}

export type StatusFlags = { index: string; queue?: string; json?: boolean };

/** `lookalike status`: the progress of the last queued run. */
export async function showStatus(flags: StatusFlags): Promise<void> {
  if (!flags.queue) throw new LookalikeError('BAD_OPTION', { message: `say which Redis holds the queue: --queue redis://HOST:6379 (or set ${ENV.queue}).` });
  const target = parseQueueUrl(flags.queue);
  await checkReachable(target);
  const name = await queueNameFor(flags.index);
  if (!name) throw new LookalikeError('QUEUE_NO_RUN', { index: describeLocation(flags.index), server: target.server });
  const redis = connect(target, false);
  const queue = new Queue(name, { connection: redis, prefix: KEY_PREFIX });
  try {
    const p = await runProgress(redis, queue, name);
    if (!p) throw new LookalikeError('QUEUE_NO_RUN', { index: describeLocation(flags.index), server: target.server });
    if (flags.json) return printJson(p);
    print(`index: ${p.index} (catalog ${p.catalog}), run queued ${p.createdAt}: ${p.finished ? 'finished' : 'in progress'}`);
    const processed = p.done + p.failed;
    print(`${processed}/${p.total} items (${Math.floor((100 * processed) / Math.max(1, p.total))}%): ${p.done} embedded, ${p.failed} failed; ${p.rate.toFixed(1)} images/s`
      + (p.finished ? '' : `, ETA ${p.etaSeconds !== undefined ? `${Math.floor(p.etaSeconds / 60)}m${String(p.etaSeconds % 60).padStart(2, '0')}s` : '?'}`));
    if (!p.finished) print(`batches: ${p.waiting} waiting, ${p.active} in work, ${p.delayed} waiting to retry; ${p.workers} worker(s) connected`);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}
