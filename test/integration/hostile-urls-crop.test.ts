/**
 * Hostile cases of issue 23 (part 2): the crop (library, CLI and API), URL catalogs that
 * point at this machine or a private network, messages the path scrubbing garbled, an
 * upload cut off by its client, the model cache, and URL images fetched once. Fuzzing with
 * fast-check covers the crop and URL parsers.
 *
 * No traffic leaves this machine: private and link-local addresses are given by a stub
 * resolver and must be refused before any connection is attempted (net's own
 * 'connectionAttempt' events are counted); the only servers are local, on 127.0.0.1; and a
 * test firewall (helpers/firewall.ts) stops any connection off the machine, should the
 * policy regress.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dc from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildIndex } from '../../src/indexing/build.js';
import { Lookalike } from '../../src/lookalike.js';
import { Embedder } from '../../src/model/embedder.js';
import { defaultSettings } from '../../src/model/registry.js';
import { createServer } from '../../src/server/app.js';
import { isLookalikeError } from '../../src/errors.js';
import { checkRegion, parseCrop } from '../../src/validate.js';
import { fetchImage, type Resolver } from '../../src/image/fetch.js';
import { refusedRange } from '../../src/image/url-policy.js';
import { drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';
import { raiseFirewall } from '../helpers/firewall.js';
import { codeOf } from '../helpers/hostile.js';
import { runCliInProcess } from '../helpers/cli.js';

let catalog: string, indexDir: string;
let embedder: Embedder;
let lookalike: Lookalike;
let app: FastifyInstance;
let base: string;
let jpeg: Buffer;
const warnings: string[] = [];
const stderr: string[] = [];

/** Every TCP connection this process attempts, as "address:port". */
const attempts: string[] = [];
const onSocket = ({ socket }: { socket: net.Socket }) => socket.on('connectionAttempt', (address: string, port: number) => attempts.push(`${address}:${port}`));

let lowerFirewall: () => void = () => {};

beforeAll(async () => {
  // Should the policy ever let a private address through, no packet leaves this machine.
  lowerFirewall = raiseFirewall();
  dc.subscribe('net.client.socket', onSocket as (message: unknown) => void);
  jpeg = await drawProduct('shirt', '#e90');
  catalog = await makeCatalog();
  indexDir = path.join(tempDir('lookalike-h23b-'), 'index');
  embedder = await Embedder.create(defaultSettings().backbone);
  await buildIndex({ catalogDir: catalog, indexDir, embedder });
  lookalike = await Lookalike.open(indexDir);
  const onWarning = (w: Error & { code?: string }) => warnings.push(`${w.code ?? w.name}: ${w.message}`);
  process.on('warning', onWarning);
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => { stderr.push(String(chunk)); return true; }) as typeof process.stderr.write;
  try {
    app = await createServer(lookalike, { webRoot: false, warmUp: false });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
  } finally {
    process.stderr.write = write;
  }
  // Warnings are emitted on the next tick.
  await new Promise((r) => setTimeout(r, 50));
  process.off('warning', onWarning);
}, 300_000);

afterAll(async () => {
  lowerFirewall();
  dc.unsubscribe('net.client.socket', onSocket as (message: unknown) => void);
  await app?.close();
  await lookalike?.close();
  await embedder?.release();
});

async function api(method: string, url: string, init: RequestInit = {}): Promise<{ status: number; code?: string; message?: string }> {
  const res = await fetch(base + url, { method, ...init });
  const body = await res.json() as { error?: { code: string; message: string } };
  return { status: res.status, code: body.error?.code, message: body.error?.message };
}

function upload(fields: Record<string, string>): Promise<{ status: number; code?: string; message?: string }> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(jpeg)], { type: 'image/jpeg' }), 'photo.jpg');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return api('POST', '/api/search', { body: form });
}

/** The CLI run in this process, as `lookalike ...` (exit code, stdout, stderr). */
const cli = runCliInProcess;

// ---------------------------------------------------------------------------------------
describe('messages and logs of the server (items 9 and 11)', () => {
  it('echoes the route and the id a client sent, instead of "a file on the server"', async () => {
    const route = await api('PUT', '/api/search');
    expect(route).toMatchObject({ status: 404, code: 'ROUTE_NOT_FOUND' });
    expect(route.message).toContain('nothing at PUT /api/search');
    const traversal = await api('GET', '/images/..%2f..%2fetc%2fpasswd');
    expect(traversal).toMatchObject({ status: 404, code: 'ITEM_NOT_FOUND' });
    expect(traversal.message).toContain('no item with id "../../etc/passwd"');
    expect(traversal.message).not.toContain('a file on the server');
  });

  it('starts without a deprecation warning (FSTDEP022) or anything on stderr', () => {
    expect(warnings.filter((w) => /FSTDEP/.test(w))).toEqual([]);
    expect(stderr.join('')).toBe('');
  });

  it('logs nothing unexpected when a client aborts its upload', async () => {
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string | Uint8Array) => { written.push(String(chunk)); return true; }) as typeof process.stderr.write;
    try {
      const url = new URL(base);
      const boundary = 'h23b-boundary';
      await new Promise<void>((resolve) => {
        const socket = net.connect(Number(url.port), url.hostname, () => {
          socket.write(`POST /api/search HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 1000000\r\n\r\n`);
          socket.write(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`);
          socket.write(jpeg.subarray(0, 500));
          setTimeout(() => { socket.destroy(); resolve(); }, 100);
        });
      });
      await new Promise((r) => setTimeout(r, 300));
      // The server still answers, and said nothing about a bug.
      expect((await fetch(`${base}/api/health`)).status).toBe(200);
    } finally {
      process.stderr.write = write;
    }
    expect(written.join('')).not.toMatch(/unexpected error|aborted/);
  });
});

// ---------------------------------------------------------------------------------------
describe('the crop: one check in the library, for the library, the CLI and the API (item 8)', () => {
  const BAD_BOXES: unknown[] = [
    { x: NaN, y: 0, w: 1, h: 1 }, { x: '0', y: 0, w: 1, h: 1 }, { x: 0, y: 0, w: 1 }, {}, 'x', [0, 0, 1, 1], null,
    { x: -0.1, y: 0, w: 0.5, h: 0.5 }, { x: 0, y: 0, w: 0, h: 0.5 }, { x: 0.8, y: 0.8, w: 0.5, h: 0.5 }, { x: 0, y: 0, w: 5, h: 1 },
    { x: 0, y: 0, w: 1e-10, h: 1e-10 }, { x: 0, y: 0, w: Infinity, h: 1 }, { x: 2, y: 0, w: 0.5, h: 0.5 },
  ];

  it('refuses a bad crop from a program with BAD_CROP before the photo is decoded, and takes a good one', async () => {
    for (const crop of BAD_BOXES) {
      expect(await codeOf(() => lookalike.searchByImage(jpeg, { crop: crop as never })), JSON.stringify(crop)).toBe('BAD_CROP');
      expect(await codeOf(() => lookalike.embedImage(jpeg, 'photo', undefined, { crop: crop as never })), JSON.stringify(crop)).toBe('BAD_CROP');
    }
    // Not blamed on the photo: a text file with a bad crop is still a crop error.
    expect(await codeOf(() => lookalike.searchByImage(Buffer.from('not a photo'), { crop: { x: NaN, y: 0, w: 1, h: 1 } }))).toBe('BAD_CROP');
    const good = await lookalike.searchByImage(jpeg, { crop: { x: 0.1, y: 0.1, w: 0.8, h: 0.8 }, k: 2 });
    expect(good.results).toHaveLength(2);
    // A rounding overshoot at the edge is cut, not refused, unless nothing is left (found by the fuzz below).
    expect(checkRegion({ x: 0.5, y: 0, w: 0.505, h: 1 })).toEqual({ x: 0.5, y: 0, w: 0.5, h: 1 });
    expect(await codeOf(() => checkRegion({ x: 0, y: 1, w: 0.01, h: 0.01 }))).toBe('BAD_CROP');
    expect(await codeOf(() => parseCrop('1,0,0.01,1'))).toBe('BAD_CROP');
    expect(await codeOf(() => checkRegion({ x: 0, y: 0, w: 0.0009, h: 0.5 }))).toBe('BAD_CROP');
    expect(checkRegion({ x: 0.2, y: 0.3, w: 0.001, h: 0.002 })).toEqual({ x: 0.2, y: 0.3, w: 0.001, h: 0.002 });
  });

  const BAD_TEXTS = [',,1,1', '0x0,0,1,1', '1e-300,0,1e-300,1', '', ' ', '0,0,1', '0,0,1,1,1', 'a,b,c,d', '0,0,-1,1', '0,0,1e-10,1e-10', '0,0,5,1', 'Infinity,0,1,1', '0.5,0.5,0.6,0.6'];

  it('refuses every bad --crop on the command line with BAD_CROP and exit 1, an empty one included', async () => {
    const photo = path.join(tempDir('lookalike-h23b-photo-'), 'photo.jpg');
    writeFileSync(photo, jpeg);
    for (const text of BAD_TEXTS) {
      const r = await cli(['query', photo, '--index', indexDir, '--crop', text]);
      expect(r.exit, `--crop "${text}": ${r.stderr}`).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/the crop must be x,y,w,h .*\[BAD_CROP\]$/m);
    }
    const ok = await cli(['query', photo, '--index', indexDir, '--crop', '0.1,0.1,0.8,0.8', '--json']);
    expect(ok.exit, ok.stderr).toBe(0);
  });

  it('answers every bad crop over HTTP with 400 BAD_CROP, the same message, no regular expression', async () => {
    for (const text of BAD_TEXTS) {
      const r = await upload({ crop: text });
      expect(r, `crop "${text}"`).toMatchObject({ status: 400, code: 'BAD_CROP' });
      expect(r.message).toMatch(/^the crop must be x,y,w,h relative to the photo/);
      expect(r.message).not.toMatch(/\\s|\(\?:|\^|pattern/);
    }
    expect((await upload({ crop: '0.1,0.1,0.8,0.8' })).status).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------
describe('URL catalogs reach public addresses only, unless a host is allowed (item 7)', () => {
  let photoServer: http.Server, port = 0, otherPort = 0;
  let other: http.Server;
  const hits: string[] = [];
  const RESOLVES: Record<string, string[]> = {
    'metadata.test': ['169.254.169.254'],
    'intranet.test': ['10.0.0.5'],
    'home.test': ['192.168.1.10'],
    'office.test': ['172.16.3.4'],
    'cgnat.test': ['100.64.0.9'],
    'ula.test': ['fd12:3456::1'],
    'linklocal6.test': ['fe80::1'],
    'multicast.test': ['224.0.0.251'],
    'zero.test': ['0.0.0.0'],
    'mapped.test': ['::ffff:10.0.0.1'],
    'mixed.test': ['203.0.113.7', '127.0.0.1'],
    'shop.test': ['127.0.0.1'],
  };
  const asked: string[] = [];
  const stub: Resolver = async (host) => {
    asked.push(host);
    const addresses = RESOLVES[host];
    if (!addresses) throw Object.assign(new Error(`no such test host ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: net.isIP(address) }));
  };

  beforeAll(async () => {
    photoServer = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/photo.jpg') return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg);
      if (req.url === '/to-metadata') return void res.writeHead(302, { location: 'http://metadata.test/latest/meta-data/' }).end();
      if (req.url === '/to-literal') return void res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      if (req.url === '/to-other-port') return void res.writeHead(302, { location: `http://127.0.0.1:${otherPort}/photo.jpg` }).end();
      if (req.url === '/to-localhost') return void res.writeHead(302, { location: `http://localhost:${otherPort}/photo.jpg` }).end();
      res.writeHead(404).end();
    });
    other = http.createServer((req, res) => { hits.push(`other${req.url}`); res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg); });
    await new Promise<void>((r) => photoServer.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    port = (photoServer.address() as AddressInfo).port;
    otherPort = (other.address() as AddressInfo).port;
  });
  afterAll(() => { photoServer?.close(); other?.close(); });

  /** The code a fetch ends with, and the connections it attempted. */
  async function attempt(url: string, options: Parameters<typeof fetchImage>[1] = {}): Promise<{ code: string | null; reason?: string; connections: string[] }> {
    const before = attempts.length;
    try {
      await fetchImage(url, { resolve: stub, retries: 0, timeoutMs: 5000, ...options });
      return { code: null, connections: attempts.slice(before) };
    } catch (err) {
      if (!isLookalikeError(err)) throw err;
      return { code: err.code, reason: err.message, connections: attempts.slice(before) };
    }
  }

  it('refuses this machine however it is written, without connecting', async () => {
    const spellings = ['127.0.0.1', 'localhost', '[::1]', '2130706433', '0x7f.1', '127.1', '0.0.0.0', '[::]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '127.255.255.254', 'LOCALHOST'];
    for (const host of spellings) {
      // localhost is resolved by the system (the hosts file); everything else is an address.
      const r = await attempt(`http://${host}:${port}/photo.jpg`, host.toLowerCase().startsWith('localhost') ? { resolve: undefined } : {});
      expect(r, host).toMatchObject({ code: 'IMAGE_URL_REFUSED', connections: [] });
      expect(r.reason).toMatch(/loopback|unspecified/);
    }
    expect(hits).toEqual([]);
  });

  it('refuses link-local, private, ULA, CGNAT, multicast and mixed answers after resolution, never connecting to them', async () => {
    for (const host of Object.keys(RESOLVES).filter((h) => h !== 'shop.test')) {
      const r = await attempt(`http://${host}/photo.jpg`);
      expect(r, host).toMatchObject({ code: 'IMAGE_URL_REFUSED', connections: [] });
      expect(r.reason).toContain(`--allow-host ${host}`);
    }
    for (const literal of ['169.254.169.254', '10.1.2.3', '192.168.0.1', '172.31.255.255', '[fd00::1]', '[fe80::1]', '100.100.100.100', '224.0.0.1', '255.255.255.255', '[::ffff:169.254.169.254]', '[64:ff9b::a9fe:a9fe]']) {
      expect(await attempt(`http://${literal}/latest/meta-data/`), literal).toMatchObject({ code: 'IMAGE_URL_REFUSED', connections: [] });
    }
    expect(refusedRange('169.254.169.254')).toMatch(/link-local/);
    expect(refusedRange('8.8.8.8')).toBeUndefined();
    expect(refusedRange('2606:4700::1111')).toBeUndefined();
    expect(refusedRange('64:ff9b::808:808')).toBeUndefined();
  });

  it('checks every redirect hop: to a link-local name, a link-local address, another port or localhost', async () => {
    const allow = { allowHosts: ['shop.test'] };
    for (const hop of ['/to-metadata', '/to-literal', '/to-other-port', '/to-localhost']) {
      const r = await attempt(`http://shop.test:${port}${hop}`, { ...allow, resolve: async (h) => (h === 'localhost' ? [{ address: '127.0.0.1', family: 4 }] : stub(h)) });
      expect(r, hop).toMatchObject({ code: 'IMAGE_URL_REFUSED' });
      // Only the allowed first hop was connected to.
      expect(r.connections, hop).toEqual([`127.0.0.1:${port}`]);
    }
    expect(hits.filter((h) => h.startsWith('other'))).toEqual([]);
  });

  it('fetches an allowed host, connecting to the very address the policy checked (no second DNS look-up)', async () => {
    asked.length = 0;
    // shop.test exists only in the stub: a second, system look-up would fail.
    const r = await attempt(`http://shop.test:${port}/photo.jpg`, { allowHosts: ['SHOP.test'] });
    expect(r).toMatchObject({ code: null, connections: [`127.0.0.1:${port}`] });
    expect(asked).toEqual(['shop.test']);
    expect(await attempt(`http://127.0.0.1:${port}/photo.jpg`, { allowHosts: ['127.0.0.1'] })).toMatchObject({ code: null });
    // An allowed name does not open up its address, nor other names.
    expect(await attempt(`http://127.0.0.1:${port}/photo.jpg`, { allowHosts: ['shop.test'] })).toMatchObject({ code: 'IMAGE_URL_REFUSED', connections: [] });
  });

  it('lets `index --allow-host` (or LOOKALIKE_ALLOW_HOSTS) fetch a local image server that is refused without it', async () => {
    const dir = tempDir('lookalike-h23b-urls-');
    writeFileSync(path.join(dir, 'styles.csv'), `id,articleType,link\n1,Shirts,http://127.0.0.1:${port}/photo.jpg\n2,Shirts,http://localhost:${port}/photo.jpg\n`);
    const refusedIndex = path.join(dir, 'refused');
    const r1 = await cli(['index', dir, '--index', refusedIndex, '--precision', 'fp32', '--json'], { LOOKALIKE_ALLOW_HOSTS: undefined });
    expect(r1.exit, r1.stderr).toBe(0);
    const report1 = JSON.parse(r1.stdout) as { added: number; failed: Array<{ id: string; reason: string }> };
    expect(report1.added).toBe(0);
    expect(report1.failed.map((f) => f.reason)).toEqual([expect.stringMatching(/127\.0\.0\.1 is a loopback address.*--allow-host 127\.0\.0\.1/), expect.stringMatching(/localhost resolves to .*loopback.*--allow-host localhost/)]);
    const r2 = await cli(['index', dir, '--index', path.join(dir, 'allowed'), '--precision', 'fp32', '--allow-host', '127.0.0.1', '--allow-host', 'localhost', '--json']);
    expect(r2.exit, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ added: 2, failed: [] });
    const r3 = await cli(['index', dir, '--index', path.join(dir, 'env'), '--precision', 'fp32', '--json'], { LOOKALIKE_ALLOW_HOSTS: '127.0.0.1, localhost' });
    expect(JSON.parse(r3.stdout)).toMatchObject({ added: 2, failed: [] });
    const bad = await cli(['index', dir, '--index', path.join(dir, 'bad'), '--allow-host', `http://127.0.0.1:${port}/`]);
    expect(bad.exit).toBe(1);
    expect(bad.stderr).toMatch(/--allow-host takes host names or IP addresses.*\[BAD_OPTION\]$/m);
  });
});

// ---------------------------------------------------------------------------------------
describe('image URLs are fetched once, and slow hosts do not hold the network back (item 15)', () => {
  let server: http.Server, base = '';
  const photos = new Map<string, Buffer>();
  const gets = new Map<string, number>();
  let releaseSlow: () => void = () => {};
  let slowGate = new Promise<void>((resolve) => { releaseSlow = resolve; });

  beforeAll(async () => {
    const shapes = ['shirt', 'trousers', 'watch', 'bag'] as const;
    const colours = ['#d22', '#23c', '#2a3', '#111', '#e90', '#888'];
    for (let i = 0; i < 12; i++) photos.set(String(i), await drawProduct(shapes[i % 4], colours[i % 6]));
    server = http.createServer((req, res) => {
      const m = /^\/(slow-)?(\d+)\.jpg$/.exec(req.url ?? '');
      if (!m || !photos.has(m[2])) return void res.writeHead(404).end();
      gets.set(req.url!, (gets.get(req.url!) ?? 0) + 1);
      const send = () => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(photos.get(m[2]));
      if (m[1]) void slowGate.then(send);
      else send();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => { releaseSlow(); server?.close(); });

  function urlCatalog(urls: string[]): string {
    const dir = tempDir('lookalike-h23b-fetch-');
    writeFileSync(path.join(dir, 'styles.csv'), `id,articleType,link\n${urls.map((u, i) => `${i},Shirts,${u}`).join('\n')}\n`);
    return dir;
  }

  it('fetches each image URL of a new int8 index once (calibration and embedding share the bytes)', async () => {
    gets.clear();
    const urls = [...photos.keys()].slice(0, 6).map((id) => `${base}/${id}.jpg`);
    const report = await buildIndex({ catalogDir: urlCatalog(urls), indexDir: path.join(tempDir('lookalike-h23b-int8-'), 'index'), settings: { precision: 'int8' }, fetch: { allowHosts: ['127.0.0.1'] } });
    expect(report).toMatchObject({ added: 6, failed: [] });
    expect([...gets.values()]).toEqual([1, 1, 1, 1, 1, 1]);
  }, 240_000);

  it('embeds the fast images while two slow ones are still on their way', async () => {
    slowGate = new Promise<void>((resolve) => { releaseSlow = resolve; });
    // The slow ones sit in the first and second batch of 4.
    const urls = [...photos.keys()].map((id) => (id === '0' || id === '5' ? `${base}/slow-${id}.jpg` : `${base}/${id}.jpg`));
    let doneBeforeRelease = -1;
    const release = () => { if (doneBeforeRelease < 0) { doneBeforeRelease = progress; releaseSlow(); } };
    let progress = 0;
    // Without arrival order, nothing is embedded until the slow ones come: release them after 20 s then.
    const fallback = setTimeout(release, 20_000);
    try {
      const report = await buildIndex({
        catalogDir: urlCatalog(urls), indexDir: path.join(tempDir('lookalike-h23b-slow-'), 'index'), embedder, batchSize: 4,
        fetch: { allowHosts: ['127.0.0.1'], timeoutMs: 60_000 },
        onProgress: (p) => { progress = p.done; if (p.done >= 10) release(); },
      });
      expect(report).toMatchObject({ added: 12, failed: [] });
    } finally {
      clearTimeout(fallback);
    }
    expect(doneBeforeRelease).toBe(10);
  }, 120_000);
});
