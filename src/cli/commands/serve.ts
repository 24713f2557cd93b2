/**
 * `lookalike serve`: the web page and the HTTP API over an index, from one process (also
 * what `lookalike demo` runs).
 */
import type { Logger } from 'pino';
import { QUEUE_CONCURRENCY, QUEUE_MAX_WAITING, SERVICE_DEFAULTS } from '../../defaults.js';
import { buildIndex } from '../../indexing/build.js';
import { Lookalike } from '../../lookalike.js';
import { SEARCH_SETTINGS, type SearchSetting } from '../../search/engine.js';
import { asLookalikeError, LookalikeError } from '../../errors.js';
import { describeLocation } from '../../store/location.js';
import { createServer, DEFAULT_MAX_UPLOAD_BYTES } from '../../server/app.js';
import { catalogRootOption, envOption, indexOption } from '../options.js';
import { action, badOption, intArg, print, progressBar, type Command } from '../shared.js';
import { createLogger, logFormatOption, logLevelOption, type LogFormat, type LogLevel } from '../log.js';

export interface ServeFlags {
  index: string;
  catalog?: string;
  catalogRoot?: string;
  port: number;
  host: string;
  concurrency: number;
  queue: number;
  maxUploadMb: number;
  search?: SearchSetting;
  log?: boolean;
  logFormat: LogFormat;
  logLevel: LogLevel;
  maxStaleness: number;
  drainSeconds: number;
  shutdownSeconds: number;
}

export function registerServeCommand(program: Command): void {
  program.command('serve')
    .description('Serve the web page and the HTTP API (/api, OpenAPI at /api/openapi.json) over an index. Works offline: everything is bundled. Health: /api/health/live, /api/health/ready; Prometheus metrics: /metrics.')
    .addOption(indexOption())
    .addOption(envOption('--catalog <dir>', 'index this catalog first (incremental: only new or changed items are embedded), then serve it', 'LOOKALIKE_SERVE_CATALOG'))
    .addOption(catalogRootOption())
    .addOption(envOption('-p, --port <n>', 'TCP port (0 picks a free one)', 'PORT').argParser(intArg('port', 0, 65535)).default(3000))
    .addOption(envOption('--host <address>', 'address to listen on (0.0.0.0 for every interface)', 'HOST').default('127.0.0.1'))
    .addOption(envOption('--concurrency <n>', 'image searches running at once', 'LOOKALIKE_SEARCH_CONCURRENCY').argParser(intArg('concurrency', 1, 16)).default(QUEUE_CONCURRENCY))
    .addOption(envOption('--queue <n>', 'image searches allowed to wait; more get 503 + Retry-After', 'LOOKALIKE_SEARCH_QUEUE').argParser(intArg('queue', 0, 1000)).default(QUEUE_MAX_WAITING))
    .addOption(envOption('--max-upload-mb <n>', 'largest upload, MB', 'LOOKALIKE_MAX_UPLOAD_MB').argParser(intArg('max-upload-mb', 1, 1024)).default(DEFAULT_MAX_UPLOAD_BYTES / 1024 / 1024))
    .addOption(envOption('--search <method>', 'how searches are answered unless a request says: auto (the index\'s setting, else approximate from 10,000 items), exact, ann, or db (pgvector, PostgreSQL with the vector extension)', 'LOOKALIKE_SEARCH').choices([...SEARCH_SETTINGS]))
    .addOption(envOption('--max-staleness <s>', 'a replica of a shared store whose answers were last confirmed current longer ago than this is not ready (/api/health/ready answers 503; searches still answer)', 'LOOKALIKE_MAX_STALENESS').argParser(intArg('max-staleness', 1, 86_400)).default(SERVICE_DEFAULTS.maxStalenessSeconds))
    .addOption(envOption('--drain-seconds <s>', 'on SIGTERM: seconds of answering while not ready, so load balancers stop sending first', 'LOOKALIKE_DRAIN_SECONDS').argParser(intArg('drain-seconds', 0, 300)).default(SERVICE_DEFAULTS.drainSeconds))
    .addOption(envOption('--shutdown-seconds <s>', 'on SIGTERM: exit after at most this many seconds in all, requests in flight or not', 'LOOKALIKE_SHUTDOWN_SECONDS').argParser(intArg('shutdown-seconds', 1, 600)).default(SERVICE_DEFAULTS.shutdownSeconds))
    .addOption(envOption('--log', 'log every request too (not only events and errors)', 'LOOKALIKE_LOG_REQUESTS'))
    .addOption(logFormatOption())
    .addOption(logLevelOption())
    .addHelpText('after', '\nExamples:\n  lookalike serve --index .lookalike\n  lookalike serve --catalog ../shared/datasets/fashion-small --port 8080\n  PORT=8080 HOST=0.0.0.0 LOOKALIKE_STORE=postgres://me@db:5432/shop lookalike serve --index main')
    .action(action(async (flags: ServeFlags) => {
      if (flags.shutdownSeconds <= flags.drainSeconds) badOption(`--shutdown-seconds (${flags.shutdownSeconds}) must be more than --drain-seconds (${flags.drainSeconds}): requests in flight need time to finish after the drain.`);
      if (flags.catalog) await indexFirst(flags.catalog, flags.index);
      await serveIndex(flags);
    }));

}

/**
 * A replica of a shared store follows it: each change another process makes (notified, or
 * found by the poll) is read in and the engine rebuilt beside the serving one, then swapped
 * in. Rebuilds run one at a time; one that fails (the database went away mid-read) leaves
 * the replica answering from what it has, and the next poll tries again. An outage is
 * logged once when it starts and once when the replica is current again.
 */
function followStore(lookalike: Lookalike, logger: Logger): () => Promise<void> {
  let chain: Promise<unknown> = Promise.resolve();
  let lastError = '';
  let failedAt = 0;
  const rebuild = () => {
    chain = chain.then(async () => {
      const before = lookalike.size;
      if (await lookalike.catchUp()) logger.info({ generation: lookalike.generation, items: lookalike.size }, `store: generation ${lookalike.generation}, ${lookalike.size} items (${lookalike.size - before >= 0 ? '+' : ''}${lookalike.size - before})`);
    }).catch((err: unknown) => logger.warn(`store: could not rebuild (${asLookalikeError(err).message}); still serving generation ${lookalike.generation}`));
  };
  const stopFollowing = lookalike.follow(rebuild, (err) => {
    const message = asLookalikeError(err).message;
    if (message !== lastError) logger.warn(`store: ${message}; serving generation ${lookalike.generation} from memory, retrying`);
    if (!lastError) failedAt = Date.now();
    lastError = message;
  });
  if (!stopFollowing) return async () => {};
  // The store says nothing when a check succeeds: a fresh confirmation after a failure is the reconnection.
  const watch = setInterval(() => {
    const fresh = lookalike.freshness();
    if (!lastError || !fresh || fresh.confirmedAt <= failedAt) return;
    logger.info({ generation: fresh.generation, outageSeconds: Math.round((Date.now() - failedAt) / 100) / 10 }, `store: reachable again after ${((Date.now() - failedAt) / 1000).toFixed(1)} s; serving generation ${fresh.generation}, current`);
    lastError = '';
  }, 500);
  watch.unref();
  return async () => {
    clearInterval(watch);
    await stopFollowing();
  };
}

/** Opens an index and serves the page and the API until SIGINT or SIGTERM. */
export async function serveIndex(flags: ServeFlags): Promise<void> {
  const logger = createLogger('serve', flags.logFormat, flags.logLevel);
  const lookalike = await Lookalike.open(flags.index, { search: flags.search, catalogRoot: flags.catalogRoot });
  const app = await createServer(lookalike, {
    queue: { concurrency: flags.concurrency, maxWaiting: flags.queue },
    maxUploadBytes: flags.maxUploadMb * 1024 * 1024,
    loggerInstance: logger,
    logRequests: flags.log === true,
    maxStalenessSeconds: flags.maxStaleness,
  });
  let address: string;
  try {
    address = await app.listen({ port: flags.port, host: flags.host });
  } catch (err) {
    await app.close();
    await lookalike.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new LookalikeError('PORT_IN_USE', { port: flags.port, host: flags.host });
    throw err;
  }
  // performance.now() counts from process start: this is the honest start-up time.
  const url = address.replace('://[::1]', '://localhost').replace(/\/?$/, '/');
  logger.info(`Lookalike: ${lookalike.size.toLocaleString('en-US')} items from ${describeLocation(lookalike.indexDir)}${lookalike.followsStore ? ` (generation ${lookalike.generation}, following changes)` : ''}`);
  const unfollow = followStore(lookalike, logger);
  logger.info(`Listening on ${url} (started in ${(performance.now() / 1000).toFixed(2)} s)`);
  logger.info(`API: ${url}api  OpenAPI: ${url}api/openapi.json  Health: ${url}api/health/ready  Metrics: ${url}metrics  Stop: Ctrl+C`);
  void readyLine(app).then((line) => (line.failed ? logger.error(line.message) : logger.info(line.message)));

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    // Orchestrators send SIGTERM: fail readiness first and keep answering while load
    // balancers notice; a person's Ctrl+C (SIGINT) needs no drain.
    const drainMs = signal === 'SIGTERM' ? flags.drainSeconds * 1000 : 0;
    app.drain();
    logger.info(`${signal}: stopping${drainMs ? `; not ready from now on, still answering for ${flags.drainSeconds} s` : ''}; requests in flight finish; exit within ${flags.shutdownSeconds} s`);
    setTimeout(() => {
      logger.warn(`still busy ${flags.shutdownSeconds} s after ${signal}: exiting anyway`);
      process.exit(1);
    }, flags.shutdownSeconds * 1000).unref();
    await new Promise((r) => setTimeout(r, drainMs));
    await unfollow();
    await app.close();
    await lookalike.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

export async function indexFirst(catalog: string, indexDir: string): Promise<void> {
  const bar = progressBar('indexing', 'img');
  let started = false;
  const report = await buildIndex({
    catalogDir: catalog,
    indexDir,
    log: (m) => process.stderr.write(`${m}\n`),
    onProgress: (p) => {
      if (!started) { bar.start(p.total); started = true; }
      bar.update(p.done, p.rate);
    },
  });
  bar.stop();
  print(`index: ${indexDir}: ${report.total} items (+${report.added} new, -${report.removed} removed) in ${report.seconds.toFixed(1)} s`);
}

async function readyLine(app: Awaited<ReturnType<typeof createServer>>): Promise<{ failed: boolean; message: string }> {
  const model = await app.modelReady;
  if (model.state === 'failed') return { failed: true, message: `lookalike: the model could not be loaded: ${model.message} Searches by item still work; searches by photo will fail.` };
  return { failed: false, message: `Model ready in ${(performance.now() / 1000).toFixed(2)} s since start: photo searches now answer at full speed.` };
}
