/**
 * The API benchmark: start `lookalike serve` as a child process (so its memory is its own,
 * read from /proc), upload catalog photos to POST /api/search one request after another
 * (or a few at once), and report latency percentiles, throughput and the server's peak RSS.
 * Latency is measured by the client: from sending the upload to having parsed the JSON.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PACKAGE_ROOT } from '../../paths.js';
import { describeLocation, isStoreUrl } from '../../store/location.js';
import { DEFAULT_K } from '../../defaults.js';
import { percentile } from '../../math/stats.js';

export interface ApiBenchOptions {
  indexDir: string;
  requests?: number;
  concurrency?: number;
  k?: number;
  log?: (message: string) => void;
  /** Give up waiting for the server after this long (ms). */
  startTimeoutMs?: number;
  /** The server's search setting (`serve --search`). */
  search?: string;
}

export interface ApiBenchReport {
  indexDir: string;
  items: number;
  requests: number;
  concurrency: number;
  k: number;
  startup: {
    /** Spawn to "Listening on", measured here (includes Node's own start). */
    listeningSeconds: number;
    /** Spawn to "Model ready" (model loaded, vectors normalised, one warm-up inference). */
    readySeconds: number;
  };
  latency: { p50ms: number; p90ms: number; p99ms: number; maxMs: number; meanMs: number };
  /** Completed searches per second over the timed run. */
  throughput: number;
  memory: {
    /** RSS once ready, before the first request. */
    idleRssMiB: number;
    /** Highest RSS sampled during the run. */
    peakRssDuringRunMiB: number;
    /** The kernel's high-water mark of RSS over the server's whole life. */
    vmHwmMiB: number;
  };
  /** Answers other than 200 (e.g. 503 when concurrency exceeds the queue). */
  errors: number;
  statuses: Record<string, number>;
}

export async function runApiBench(options: ApiBenchOptions): Promise<ApiBenchReport> {
  const requests = options.requests ?? 200;
  const concurrency = options.concurrency ?? 1;
  const k = options.k ?? DEFAULT_K;
  const log = options.log ?? (() => {});
  const server = await startServer(options.indexDir, Math.max(8, concurrency), options.startTimeoutMs ?? 180_000, log, options.search);
  try {
    const base = server.url;
    const page = await getJson<{ total: number }>(`${base}api/items?limit=1`);
    const photos = await pickPhotos(base, page.total, Math.min(requests, page.total));
    log(`bench-api: ${photos.length} catalog photos fetched; timing ${requests} uploads (concurrency ${concurrency})`);
    const idleRss = readStatus(server.pid).rss;

    let peakRss = idleRss;
    const sampler = setInterval(() => { peakRss = Math.max(peakRss, readStatus(server.pid).rss); }, 50);
    const latencies: number[] = [];
    const statuses: Record<string, number> = {};
    let next = 0;
    const started = performance.now();
    const worker = async () => {
      while (next < requests) {
        const photo = photos[next++ % photos.length];
        const form = new FormData();
        form.append('image', new Blob([photo.bytes], { type: 'image/jpeg' }), `${photo.id}.jpg`);
        form.append('k', String(k));
        const t0 = performance.now();
        const res = await fetch(`${base}api/search`, { method: 'POST', body: form });
        await res.json();
        latencies.push(performance.now() - t0);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, readStatus(server.pid).rss);
    const hwm = readStatus(server.pid).hwm;

    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      indexDir: isStoreUrl(options.indexDir) ? describeLocation(options.indexDir) : path.resolve(options.indexDir),
      items: page.total,
      requests,
      concurrency,
      k,
      startup: { listeningSeconds: server.listeningSeconds, readySeconds: server.readySeconds },
      latency: {
        p50ms: percentile(sorted, 50),
        p90ms: percentile(sorted, 90),
        p99ms: percentile(sorted, 99),
        maxMs: sorted[sorted.length - 1],
        meanMs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
      },
      throughput: requests / seconds,
      memory: { idleRssMiB: mib(idleRss), peakRssDuringRunMiB: mib(peakRss), vmHwmMiB: mib(hwm) },
      errors: latencies.length - (statuses[200] ?? 0),
      statuses,
    };
  } finally {
    await server.stop();
  }
}


interface RunningServer {
  url: string;
  pid: number;
  listeningSeconds: number;
  readySeconds: number;
  stop: () => Promise<void>;
}

async function startServer(indexDir: string, queue: number, timeoutMs: number, log: (m: string) => void, search?: string): Promise<RunningServer> {
  const t0 = performance.now();
  const args = ['serve', '--index', indexDir, '--port', '0', '--host', '127.0.0.1', '--queue', String(queue), ...(search ? ['--search', search] : [])];
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin', 'lookalike.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () => stopChild(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  try {
    return await new Promise<RunningServer>((resolve, reject) => {
      let url = '';
      let listeningSeconds = 0;
      const timer = setTimeout(() => reject(new Error(`the server did not become ready within ${timeoutMs / 1000} s`)), timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (code ${code}) before it was ready: ${stderr.trim() || 'no message'}`));
      });
      createInterface({ input: child.stdout! }).on('line', (record) => {
        // serve logs JSON lines (pino): the message is their "msg".
        const line = messageOf(record);
        log(`server: ${line}`);
        const listening = /^Listening on (http:\/\/\S+)/.exec(line);
        if (listening) {
          url = listening[1];
          listeningSeconds = (performance.now() - t0) / 1000;
        }
        if (/^Model ready/.test(line) && url) {
          clearTimeout(timer);
          resolve({ url, pid: child.pid!, listeningSeconds, readySeconds: (performance.now() - t0) / 1000, stop });
        }
        if (/model could not be loaded/.test(line)) {
          clearTimeout(timer);
          reject(new Error(line));
        }
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
}

function messageOf(line: string): string {
  try {
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof msg === 'string' ? msg : line;
  } catch {
    return line;
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => { clearTimeout(force); resolve(); });
    child.kill('SIGTERM');
  });
}

/** `count` catalog photos spread evenly over the catalog, fetched through the API. */
async function pickPhotos(base: string, total: number, count: number): Promise<Array<{ id: string; bytes: Uint8Array<ArrayBuffer> }>> {
  const photos: Array<{ id: string; bytes: Uint8Array<ArrayBuffer> }> = [];
  const step = total / count;
  for (let i = 0; i < count; i++) {
    const { items } = await getJson<{ items: Array<{ id: string; imageUrl: string }> }>(`${base}api/items?limit=1&offset=${Math.floor(i * step)}`);
    const res = await fetch(new URL(items[0].imageUrl, base));
    if (!res.ok) throw new Error(`GET ${items[0].imageUrl} answered ${res.status}`);
    photos.push({ id: items[0].id, bytes: new Uint8Array(await res.arrayBuffer()) });
  }
  return photos;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

/** VmRSS and VmHWM of a process in bytes (Linux /proc; 0 elsewhere). */
function readStatus(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

function mib(bytes: number): number {
  return bytes / 1024 / 1024;
}
