/**
 * Where the job queue lives: `--queue redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (rediss://
 * for TLS), and which queue in it belongs to an index. The queue is named after the index
 * itself (store/open.ts indexIdentity: a folder's real path, or an id kept in the PostgreSQL
 * index), not after how its location is spelled: `index` and every `worker` reach the same
 * queue whether they write @localhost or @127.0.0.1, and two indexes never share one.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { LookalikeError } from '../errors.js';
import { decodable, redact } from '../store/location.js';
import { indexIdentity } from '../store/open.js';

export interface QueueTarget {
  url: string;
  /** host:port, for messages (never the password). */
  server: string;
  options: RedisOptions;
}

/**
 * How long the first contact with Redis may take in all (connect, PING, SELECT): a port
 * that accepts connections but never answers gets QUEUE_UNREACHABLE, as a silent PostgreSQL
 * gets STORE_UNREACHABLE, instead of a command that waits for ever.
 */
export const QUEUE_CHECK_MS = 7500;

/** How Redis says no to a login (ACL users, requirepass). */
const LOGIN_REFUSED = /WRONGPASS|NOAUTH|invalid password|invalid username|AUTH failed|NOPERM/i;

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
  if (!decodable(parsed.username) || !decodable(parsed.password)) {
    throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(url), reason: 'a "%" must start an escape such as %2F; write "%" itself as %25' });
  }
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

/**
 * Fails fast, in one line, when Redis is not there, refuses the login, or has no such
 * database (the first thing every command does). The database is selected here, by hand:
 * ioredis only reports a refused SELECT as an event and goes on in database 0, which would
 * queue a run where no worker looks for it.
 */
export async function checkReachable(target: QueueTarget): Promise<void> {
  const { db, ...options } = target.options;
  const redis = new Redis({ ...options, lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // A refused login arrives as an event; the command that fails then only says "closed".
  let event: Error | undefined;
  redis.on('error', (err: Error) => { event ??= err; });
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${QUEUE_CHECK_MS / 1000} s (is it a Redis server?)`)), QUEUE_CHECK_MS);
  });
  try {
    await Promise.race([silent, (async () => {
      await redis.connect();
      await redis.ping();
      if (db) await redis.select(db);
    })()]);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const message = (e.message ?? String(err)).split('\n')[0];
    const login = [message, event?.message.split('\n')[0] ?? ''].find((m) => LOGIN_REFUSED.test(m));
    if (login) throw new LookalikeError('QUEUE_AUTH_FAILED', { server: target.server, reason: login }, { cause: err });
    if (/DB index is out of range|invalid DB index/i.test(message)) {
      const count = await redis.config('GET', 'databases').then((r) => Number((r as string[])[1]), () => undefined).catch(() => undefined);
      throw new LookalikeError('QUEUE_URL_INVALID', { url: redact(target.url), reason: `the Redis server at ${target.server} has no database ${db}${count ? `: its databases are 0 to ${count - 1}` : ''}` }, { cause: err });
    }
    throw new LookalikeError('QUEUE_UNREACHABLE', { server: target.server, reason: e.code ?? message }, { cause: err });
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/**
 * The queue of one index, named after the index itself (indexIdentity), so that every
 * spelling of its location meets in one queue. `create`: a writer (`index`, `worker`) may
 * give an index made by an older Lookalike its identity; a reader gets undefined then.
 */
export async function queueNameFor(location: string, options: { create: true }): Promise<string>;
export async function queueNameFor(location: string, options?: { create?: boolean }): Promise<string | undefined>;
export async function queueNameFor(location: string, options: { create?: boolean } = {}): Promise<string | undefined> {
  const identity = await indexIdentity(location, options);
  return identity === undefined ? undefined : `index-${createHash('sha256').update(identity).digest('hex').slice(0, 16)}`;
}
