/**
 * Where an index lives, as one string that every layer passes along unchanged: a folder
 * (SQLite, the embedded default) or `postgres://USER@HOST:PORT/DATABASE#NAME`, the index
 * NAME inside a shared PostgreSQL database. The CLI builds the second form from `--store`
 * and `--index`; the fragment never reaches the server.
 */
import { LookalikeError, redactUrl } from '../errors.js';

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
/** libpq's sslmode values (docs/shared-store.md, "TLS to PostgreSQL"). */
const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'];
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
  // A fragment already there (`…/shop#main`) gives way to --index; a '#' in a password (an
  // '@' or '/' follows it) stays, and the index name follows the last '#' (parseLocation).
  const hash = url.lastIndexOf('#');
  const base = hash >= 0 && !/[@/]/.test(url.slice(hash + 1)) ? url.slice(0, hash) : url;
  return `${base}#${index}`;
}

export function checkIndexName(name: string): string {
  if (!NAME.test(name) || RESERVED.test(name)) throw new LookalikeError('STORE_BAD_INDEX_NAME', { name });
  return name;
}

export function parseLocation(location: string): PgLocation {
  const { url, index: name } = splitLocation(location);
  const index = checkIndexName(name);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: `it cannot be parsed as a URL${hasUserInfo(url) ? '; write / # ? @ : in a password as %2F %23 %3F %40 %3A' : ''}` });
  }
  if (parsed.hash) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'it has a "#": name the index with --index, and write a "#" in a password as %23' });
  if (!parsed.hostname) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'no host' });
  if (parsed.port && !(Number(parsed.port) > 0 && Number(parsed.port) < 65536)) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: `bad port ${parsed.port}` });
  // pg decodes these too, and a stray % would throw inside it: refused here, in one line.
  if (!decodable(parsed.username) || !decodable(parsed.password) || !decodable(parsed.pathname)) {
    throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'a "%" must start an escape such as %2F; write "%" itself as %25' });
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!database || database.includes('/')) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: 'no database name after the host (…:5432/DATABASE)' });
  const sslmode = parsed.searchParams.get('sslmode');
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) throw new LookalikeError('STORE_URL_INVALID', { url: redact(url), reason: `unknown sslmode "${sslmode}"; use one of ${SSL_MODES.join(', ')}` });
  // ?host=/run/postgresql (a socket folder) or ?host=other overrides the URL's host, in pg as here.
  const host = parsed.searchParams.get('host') || parsed.hostname;
  return {
    url,
    index,
    server: `${host}:${parsed.searchParams.get('port') || parsed.port || 5432}`,
    user: decodeURIComponent(parsed.username) || process.env.PGUSER || process.env.USER || 'postgres',
    database,
  };
}

/** `URL#NAME` apart: the name follows the last '#' (index names never hold one). */
function splitLocation(location: string): { url: string; index: string } {
  const hash = location.lastIndexOf('#');
  const suffix = location.slice(hash + 1);
  // After a '#' that belongs to a password comes the rest of the URL (an '@', a '/'), not a name.
  if (hash < 0 || /[@/]/.test(suffix)) return { url: location, index: 'lookalike' };
  return { url: location.slice(0, hash), index: decodable(suffix) ? decodeURIComponent(suffix) : suffix };
}

export function decodable(text: string): boolean {
  try {
    decodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

function hasUserInfo(url: string): boolean {
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  return rest !== url && rest.includes('@');
}

/** The URL without its password, for messages and logs (errors.ts redactUrl). */
export const redact = redactUrl;

/** What a person reads for a location: the folder, or the index in its database. */
export function describeLocation(location: string): string {
  if (!isStoreUrl(location)) return location;
  const { url, index } = splitLocation(location);
  return `${redact(url)} (index ${index})`;
}

/** The options that name this index on the command line: `--index DIR`, or `--store URL --index NAME`. */
export function indexArgs(location: string): string {
  if (!isStoreUrl(location)) return `--index ${location}`;
  const { url, index } = splitLocation(location);
  return `--store ${redact(url)} --index ${index}`;
}
