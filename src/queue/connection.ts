/**
 * Where the job queue lives: `--queue redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (rediss://
 * for TLS), and which queue in it belongs to an index. The queue is named after the index's
 * location, so `index` and every `worker` given the same --store/--index meet in the same
 * queue without agreeing on anything else, and two indexes never share one.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { LookalikeError } from '../errors.js';
import { isStoreUrl, redact } from '../store/location.js';

export interface QueueTarget {
  url: string;
  /** host:port, for messages (never the password). */
  server: string;
  options: RedisOptions;
}

/** Keys of every Lookalike queue start with this (BullMQ's prefix). */
export const KEY_PREFIX = 'lookalike';

export function parseQueueUrl(url: string): QueueTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(url), reason: 'it cannot be parsed as a URL' });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(url), reason: `unknown scheme "${parsed.protocol.replace(/:$/, '')}"` });
  }
  if (!parsed.hostname) throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(url), reason: 'no host' });
  const port = parsed.port ? Number(parsed.port) : 6379;
  if (!(port > 0 && port < 65536)) throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(url), reason: `bad port ${parsed.port}` });
  const db = parsed.pathname.replace(/^\//, '');
  if (db && !/^\d+$/.test(db)) throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(url), reason: `the database after the host must be a number, not "${db}"` });
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    url,
    server: `${host}:${port}`,
    options: {
      host,
      port,
      db: db ? Number(db) : 0,
      ...(parsed.username && { username: decodeURIComponent(parsed.username) }),
      ...(parsed.password && { password: decodeURIComponent(parsed.password) }),
      ...(parsed.protocol === 'rediss:' && { tls: {} }),
    },
  };
}

/**
 * A connection for BullMQ. `persistent` (workers): commands wait through an outage and the
 * client reconnects for ever, so a Redis restart pauses a worker instead of ending it.
 * Otherwise (index, status): a few seconds of retries, then QUEUE_UNREACHABLE.
 */
export function connect(target: QueueTarget, persistent: boolean): Redis {
  const redis = new Redis({
    ...target.options,
    maxRetriesPerRequest: null,
    connectTimeout: 3000,
    retryStrategy: (times) => (persistent || times < 3 ? Math.min(2000, 200 * times) : null),
  });
  // Connection errors surface where a command fails (or, for workers, as log lines).
  redis.on('error', () => {});
  return redis;
}

/** Fails fast, in one line, when Redis is not there (the first thing every command does). */
export async function checkReachable(target: QueueTarget): Promise<void> {
  const redis = new Redis({ ...target.options, lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    const e = err as { code?: string; message?: string };
    throw new LookalikeError('QUEUE_UNREACHABLE', { server: target.server, reason: e.code ?? e.message ?? String(err) }, { cause: err });
  } finally {
    redis.disconnect();
  }
}

/** The queue of one index: a stable name from its location (a folder is made absolute). */
export function queueNameFor(location: string): string {
  const canonical = isStoreUrl(location) ? redact(location) : path.resolve(location);
  return `index-${createHash('sha256').update(canonical).digest('hex').slice(0, 16)}`;
}
