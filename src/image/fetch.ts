/**
 * Fetching a catalog image over HTTP(S), for catalogs whose photos are not on a shared disk.
 * A worker fetches URLs that come from a CSV someone else wrote, so every fetch is fenced:
 * a time-out over the whole response (headers and body), a size limit enforced while the
 * body streams (a lying or missing Content-Length changes nothing), redirects followed by
 * hand so that one to file:, data: or any other scheme is refused, and the bytes sniffed
 * before a decoder sees them. Transient failures (network, time-out, 5xx, 429) are retried
 * a bounded number of times; everything else fails at once with a reason a person can read.
 */
import { FETCH_DEFAULTS } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { isAccepted, sniffFormat } from './sniff.js';

export interface FetchOptions {
  /** Whole request, first byte to last, in ms. */
  timeoutMs?: number;
  maxBytes?: number;
  /** Extra attempts after a transient failure. */
  retries?: number;
  maxRedirects?: number;
}

/** The bytes, and what identifies this version of them without reading them again. */
export interface FetchedImage { bytes: Buffer; stamp?: string }

export function isImageUrl(image: string): boolean {
  return /^https?:\/\//i.test(image);
}

/** A failure worth another try (the server or the network may recover). */
class Transient extends Error {}

export async function fetchImage(url: string, options: FetchOptions = {}): Promise<FetchedImage> {
  return withRetries(url, options, (o) => fetchOnce(url, o, 'GET') as Promise<FetchedImage>);
}

/**
 * The stamp of the image a URL serves now (ETag, else Last-Modified), from a HEAD request
 * fenced like a fetch; undefined when the server sends neither. A rerun compares it with the
 * stamp stored when the image was embedded.
 */
export async function probeImageUrl(url: string, options: FetchOptions = {}): Promise<string | undefined> {
  return withRetries(url, options, (o) => fetchOnce(url, o, 'HEAD') as Promise<string | undefined>);
}

async function withRetries<T>(url: string, options: FetchOptions, once: (o: Required<FetchOptions>) => Promise<T>): Promise<T> {
  const o = { ...FETCH_DEFAULTS, ...options };
  let last: Error | undefined;
  for (let attempt = 0; attempt <= o.retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
    try {
      return await once(o);
    } catch (err) {
      if (!(err instanceof Transient)) throw err;
      last = err;
    }
  }
  throw failed(url, `${last?.message ?? 'failed'} (${o.retries + 1} attempts)`);
}

/** ETag when the server gives one (it names the bytes), else Last-Modified. */
function stampOf(headers: Headers): string | undefined {
  const etag = headers.get('etag');
  if (etag) return `etag:${etag}`;
  const modified = headers.get('last-modified');
  return modified ? `modified:${modified}` : undefined;
}

async function fetchOnce(url: string, o: Required<FetchOptions>, method: 'GET' | 'HEAD'): Promise<FetchedImage | string | undefined> {
  const signal = AbortSignal.timeout(o.timeoutMs);
  let current = url;
  try {
    for (let hop = 0; ; hop++) {
      const target = parseHttpUrl(url, current);
      const response = await fetch(target, { method, redirect: 'manual', signal, headers: { accept: 'image/jpeg, image/png, image/webp' } });
      if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
        await response.body?.cancel();
        if (hop >= o.maxRedirects) throw failed(url, `more than ${o.maxRedirects} redirects`);
        current = new URL(response.headers.get('location')!, target).href;
        continue;
      }
      if (response.status === 429 || response.status >= 500) {
        await response.body?.cancel();
        throw new Transient(`HTTP ${response.status}`);
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw failed(url, `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`);
      }
      if (method === 'HEAD') return stampOf(response.headers);
      const type = (response.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
      // Servers label photos image/* or, lazily, application/octet-stream; the bytes decide below.
      if (type && !type.startsWith('image/') && type !== 'application/octet-stream' && type !== 'binary/octet-stream') {
        await response.body?.cancel();
        throw failed(url, `the server sent ${type}, not an image`);
      }
      const declared = Number(response.headers.get('content-length') ?? NaN);
      if (declared > o.maxBytes) {
        await response.body?.cancel();
        throw failed(url, `the image is ${declared} bytes, over the limit of ${o.maxBytes}`);
      }
      const bytes = await readLimited(response, url, o.maxBytes);
      const format = sniffFormat(bytes);
      if (!isAccepted(format)) throw failed(url, `the body is not a JPEG, PNG or WebP image (detected: ${format})`);
      return { bytes, stamp: stampOf(response.headers) };
    }
  } catch (err) {
    if (err instanceof LookalikeError || err instanceof Transient) throw err;
    if (signal.aborted) throw new Transient(`no complete answer within ${o.timeoutMs} ms`);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Transient(cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err)));
  }
}

/** Only http(s): a redirect to file:, ftp: or data: must never reach the local machine. */
function parseHttpUrl(original: string, current: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(current);
  } catch {
    throw failed(original, `"${current}" is not a valid URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw failed(original, current === original ? `only http and https URLs are fetched, not ${parsed.protocol}` : `it redirects to ${parsed.protocol} (${current}), which is refused: only http and https are followed`);
  }
  return parsed;
}

async function readLimited(response: Response, url: string, maxBytes: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw failed(url, `the body is over the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function failed(url: string, reason: string): LookalikeError {
  return new LookalikeError('IMAGE_FETCH_FAILED', { url, reason });
}
