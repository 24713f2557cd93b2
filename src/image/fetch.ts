/**
 * Fetching a catalog image over HTTP(S), for catalogs whose photos are not on a shared disk.
 * A worker fetches URLs that come from a CSV someone else wrote, so every fetch is fenced:
 * a time-out over the whole response (headers and body), a size limit enforced while the
 * body streams (a lying or missing Content-Length changes nothing), redirects followed by
 * hand so that one to file:, data: or any other scheme is refused, and the bytes sniffed
 * before a decoder sees them. Transient failures (network, time-out, 5xx, 429) are retried
 * a bounded number of times; everything else fails at once with a reason a person can read.
 */
import http from 'node:http';
import https from 'node:https';
import { FETCH_DEFAULTS } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { isAccepted, sniffFormat } from './sniff.js';
import { policyFor, type Resolver, type UrlPolicy } from './url-policy.js';

export type { Resolver } from './url-policy.js';

export interface FetchOptions extends UrlPolicy {
  /** Whole request, first byte to last, in ms. */
  timeoutMs?: number;
  maxBytes?: number;
  /** Extra attempts after a transient failure. */
  retries?: number;
  maxRedirects?: number;
  /** Hosts fetched even on a private, loopback or link-local address (a shop's own image server). */
  allowHosts?: readonly string[];
  /** How names are resolved (default: the system's, dns.lookup). */
  resolve?: Resolver;
}

type Limits = Required<Pick<FetchOptions, 'timeoutMs' | 'maxBytes' | 'retries' | 'maxRedirects'>> & UrlPolicy;

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

async function withRetries<T>(url: string, options: FetchOptions, once: (o: Limits) => Promise<T>): Promise<T> {
  const o: Limits = { ...FETCH_DEFAULTS, ...options };
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
function stampOf(headers: http.IncomingHttpHeaders): string | undefined {
  const etag = headers.etag;
  if (etag) return `etag:${etag}`;
  const modified = headers['last-modified'];
  return modified ? `modified:${modified}` : undefined;
}

/**
 * One request, by node:http(s) rather than fetch: its socket takes a `lookup`, so it
 * connects to the address the policy checked. No agent: a pooled socket would skip the check.
 */
function request(url: string, target: URL, method: 'GET' | 'HEAD', signal: AbortSignal, policy: UrlPolicy): Promise<http.IncomingMessage> {
  const { lookup } = policyFor(url, target, policy);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(target, {
      method, signal, lookup, agent: false,
      headers: { accept: 'image/jpeg, image/png, image/webp', 'user-agent': 'lookalike' },
    }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function fetchOnce(url: string, o: Limits, method: 'GET' | 'HEAD'): Promise<FetchedImage | string | undefined> {
  const signal = AbortSignal.timeout(o.timeoutMs);
  let current = url;
  try {
    for (let hop = 0; ; hop++) {
      const target = parseHttpUrl(url, current);
      const response = await request(url, target, method, signal, o);
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400 && response.headers.location) {
        response.destroy();
        if (hop >= o.maxRedirects) throw failed(url, `more than ${o.maxRedirects} redirects`);
        current = new URL(response.headers.location, target).href;
        continue;
      }
      if (status === 429 || status >= 500) {
        response.destroy();
        throw new Transient(`HTTP ${status}`);
      }
      if (status < 200 || status >= 300) {
        response.destroy();
        throw failed(url, `HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ''}`);
      }
      if (method === 'HEAD') {
        response.destroy();
        return stampOf(response.headers);
      }
      const type = (response.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      // Servers label photos image/* or, lazily, application/octet-stream; the bytes decide below.
      if (type && !type.startsWith('image/') && type !== 'application/octet-stream' && type !== 'binary/octet-stream') {
        response.destroy();
        throw failed(url, `the server sent ${type}, not an image`);
      }
      const declared = Number(response.headers['content-length'] ?? NaN);
      if (declared > o.maxBytes) {
        response.destroy();
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
    const e = err as NodeJS.ErrnoException;
    throw new Transient(e.code ?? e.message ?? String(err));
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

async function readLimited(response: http.IncomingMessage, url: string, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    size += (chunk as Buffer).byteLength;
    if (size > maxBytes) {
      response.destroy();
      throw failed(url, `the body is over the limit of ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function failed(url: string, reason: string): LookalikeError {
  return new LookalikeError('IMAGE_FETCH_FAILED', { url, reason });
}
