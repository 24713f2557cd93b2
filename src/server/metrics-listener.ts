/**
 * A worker has no API, but Prometheus still needs to scrape it: a small HTTP listener with
 * GET /metrics (the worker's registry, plus the process's own numbers) and
 * GET /api/health/live, nothing else.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { LookalikeError } from '../errors.js';

export interface MetricsListener {
  /** The URL of /metrics. */
  url: string;
  close(): Promise<void>;
}

/** A registry with the process's own metrics (CPU, memory, event loop lag), prefixed lookalike_. */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'lookalike_' });
  return registry;
}

export async function listenForMetrics(registry: Registry, options: { port: number; host: string }): Promise<MetricsListener> {
  const server = createServer((request, response) => {
    const route = (request.url ?? '').split('?')[0];
    if (request.method === 'GET' && route === '/metrics') {
      registry.metrics().then((text) => {
        response.writeHead(200, { 'Content-Type': registry.contentType });
        response.end(text);
      }, (err: unknown) => {
        response.writeHead(500, { 'Content-Type': 'text/plain' });
        response.end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
      });
      return;
    }
    if (request.method === 'GET' && route === '/api/health/live') {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end('{"status":"ok"}');
      return;
    }
    response.writeHead(404, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: 'a worker answers only GET /metrics and GET /api/health/live.' } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new LookalikeError('PORT_IN_USE', { port: options.port, host: options.host }) : err));
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}/metrics`,
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
