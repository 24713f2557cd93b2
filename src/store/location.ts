/**
 * Where an index lives, as one string that every layer passes along unchanged: a folder
 * (SQLite, the embedded default) or `postgres://USER@HOST:PORT/DATABASE#NAME`, the index
 * NAME inside a shared PostgreSQL database. The CLI builds the second form from `--store`
 * and `--index`; the fragment never reaches the server.
 */
import { LookalikeError } from '../errors.js';

export interface PgLocation {
  /** The connection string, without the fragment. */
  url: string;
  /** The index's name: its schema in the database. */
  index: string;
  /** host:port, for messages (never the password). */
  server: string;
  user: string;
  database: string;
}

const SCHEME = /^postgres(ql)?:\/\//i;
const NAME = /^[a-z][a-z0-9_]{0,47}$/;
/** Schemas PostgreSQL owns: an index there would mix with the server's own tables. */
const RESERVED = /^(pg_|information_schema$|public$)/;

/** Whether a location names a PostgreSQL store (else it is a folder). */
export function isStoreUrl(location: string): boolean {
  return SCHEME.test(location);
}

/** `--store URL --index NAME` as one location; refuses what is not a PostgreSQL URL. */
export function storeLocation(url: string, index: string): string {
  if (!isStoreUrl(url)) {
    const reason = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? `unknown scheme "${url.split(':')[0]}"` : 'it does not start with postgres://';
    throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason });
  }
  checkIndexName(index);
  return `${url.replace(/#.*$/, '')}#${index}`;
}

export function checkIndexName(name: string): string {
  if (!NAME.test(name) || RESERVED.test(name)) throw new LookalikeError('STORE_BAD_INDEX_NAME', { name });
  return name;
}

export function parseLocation(location: string): PgLocation {
  const hash = location.indexOf('#');
  const url = hash < 0 ? location : location.slice(0, hash);
  const index = checkIndexName(hash < 0 ? 'lookalike' : decodeURIComponent(location.slice(hash + 1)));
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'it cannot be parsed as a URL' });
  }
  if (!parsed.hostname) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'no host' });
  if (parsed.port && !(Number(parsed.port) > 0 && Number(parsed.port) < 65536)) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: `bad port ${parsed.port}` });
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'no database name after the host (…:5432/DATABASE)' });
  return {
    url,
    index,
    server: `${parsed.hostname}:${parsed.port || 5432}`,
    user: decodeURIComponent(parsed.username) || process.env.PGUSER || process.env.USER || 'postgres',
    database,
  };
}

/** The URL without its password, for messages and logs. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*):[^@/]*@/, '$1:***@');
}

/** What a person reads for a location: the folder, or the index in its database. */
export function describeLocation(location: string): string {
  if (!isStoreUrl(location)) return location;
  const hash = location.indexOf('#');
  return `${redact(hash < 0 ? location : location.slice(0, hash))} (index ${hash < 0 ? 'lookalike' : location.slice(hash + 1)})`;
}
