/**
 * GET /metrics in Prometheus' text format (prom-client): request latency by route and
 * status, the inference queue, the index and, on a replica of a shared store, how far it
 * is behind the database. Each app has its own registry, so several servers in one
 * process (tests) never mix their numbers. Gauges are read when scraped, from the same
 * state /api/health reports, so the two never disagree.
 */
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServerContext } from './context.js';
import { freshnessOf } from './readiness.js';

/** Seconds: a cached item search is ~1 ms, a photo search on a busy CPU several seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function serverRegistry(ctx: ServerContext): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'lookalike_' });
  const { lookalike, queue } = ctx;
  new Gauge({
    name: 'lookalike_inference_queue_depth', help: 'Image searches waiting for the network (running ones are in lookalike_inference_running)', registers: [registry],
    collect() { this.set(queue.stats().waiting); },
  });
  new Gauge({
    name: 'lookalike_inference_running', help: 'Image searches in the network now', registers: [registry],
    collect() { this.set(queue.stats().running); },
  });
  new Counter({
    name: 'lookalike_inference_refused_total', help: 'Image searches refused with 503 SERVER_BUSY because the queue was full', registers: [registry],
    collect() { this.reset(); this.inc(queue.stats().refused); },
  });
  new Gauge({
    name: 'lookalike_index_items', help: 'Items this server answers from', registers: [registry],
    collect() { this.set(lookalike.size); },
  });
  new Gauge({
    name: 'lookalike_index_generation', help: 'The store generation this server answers from (replicas of one store at the same generation hold the same data)', registers: [registry],
    collect() { this.set(lookalike.generation); },
  });
  new Gauge({
    name: 'lookalike_replica_lag_seconds', help: 'Seconds since this replica\'s answers were last confirmed to be the database\'s latest (0 for a folder index)', registers: [registry],
    collect() { this.set(freshnessOf(ctx)?.lagSeconds ?? 0); },
  });
  new Gauge({
    name: 'lookalike_replica_generations_behind', help: 'Generations the store has that this replica does not answer from yet', registers: [registry],
    collect() { const f = freshnessOf(ctx); this.set(f ? f.storeGeneration - f.generation : 0); },
  });
  new Gauge({
    name: 'lookalike_ready', help: '1 when /api/health/ready answers 200', registers: [registry],
    collect() { this.set(ctx.readiness().ready ? 1 : 0); },
  });
  return registry;
}

/** Times every request by its route pattern (not its URL: ids would make one series each) and status. */
export function instrument(app: FastifyInstance, registry: Registry): void {
  const latency = new Histogram({
    name: 'lookalike_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    latency.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}
