/**
 * The pure half of the hostile cases of issue 23 (part 2), the rest being
 * test/integration/hostile-urls-crop.test.ts: the model cache (per user, listed and pruned),
 * and fuzzing with fast-check of the crop parser and the URL policy.
 *
 * No traffic leaves this machine: private and link-local addresses are given by a stub
 * resolver and must be refused before any connection is attempted (net's own
 * 'connectionAttempt' events are counted), and a test firewall (helpers/firewall.ts) stops
 * any connection off the machine, should the policy regress.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dc from 'node:diagnostics_channel';
import { mkdirSync, readdirSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { isLookalikeError } from '../../src/errors.js';
import { checkRegion, MIN_CROP_SIDE, parseCrop } from '../../src/validate.js';
import { fetchImage, type Resolver } from '../../src/image/fetch.js';
import { refusedRange } from '../../src/image/url-policy.js';
import { cacheDir } from '../../src/paths.js';
import { listCache, pruneCache } from '../../src/model/cache.js';
import { tempDir } from '../helpers/fixtures.js';
import { raiseFirewall } from '../helpers/firewall.js';
import { codeOf } from '../helpers/hostile.js';
import { runCliInProcess } from '../helpers/cli.js';

/** Every TCP connection this process attempts, as "address:port". */
const attempts: string[] = [];
const onSocket = ({ socket }: { socket: net.Socket }) => socket.on('connectionAttempt', (address: string, port: number) => attempts.push(`${address}:${port}`));

let lowerFirewall: () => void = () => {};

beforeAll(() => {
  // Should the policy ever let a private address through, no packet leaves this machine.
  lowerFirewall = raiseFirewall();
  dc.subscribe('net.client.socket', onSocket as (message: unknown) => void);
});

afterAll(() => {
  lowerFirewall();
  dc.unsubscribe('net.client.socket', onSocket as (message: unknown) => void);
});

/** The CLI run in this process, as `lookalike ...` (exit code, stdout, stderr). */
const cli = runCliInProcess;

describe('the model cache: per user, listed and pruned (item 14)', () => {
  function withEnv<T>(env: Record<string, string | undefined>, body: () => T): T {
    const before = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    try {
      return body();
    } finally {
      for (const [k, v] of Object.entries(before)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }

  it('lives in the user\'s cache folder (XDG_CACHE_HOME, else ~/.cache), not in the package, unless LOOKALIKE_CACHE says', () => {
    const home = tempDir('lookalike-h23b-home-');
    expect(withEnv({ LOOKALIKE_CACHE: undefined, XDG_CACHE_HOME: path.join(home, 'xdg'), HOME: home }, cacheDir)).toBe(path.join(home, 'xdg', 'lookalike'));
    if (process.platform === 'linux') {
      expect(withEnv({ LOOKALIKE_CACHE: undefined, XDG_CACHE_HOME: undefined, HOME: home }, cacheDir)).toBe(path.join(home, '.cache', 'lookalike'));
      // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
      expect(withEnv({ LOOKALIKE_CACHE: undefined, XDG_CACHE_HOME: 'relative', HOME: home }, cacheDir)).toBe(path.join(home, '.cache', 'lookalike'));
    }
    expect(withEnv({ LOOKALIKE_CACHE: path.join(home, 'mine') }, cacheDir)).toBe(path.join(home, 'mine'));
    expect(withEnv({ LOOKALIKE_CACHE: undefined, XDG_CACHE_HOME: undefined, HOME: home }, cacheDir)).not.toContain(path.resolve(import.meta.dirname, '..', '..'));
  });

  /** A cache folder as a few weeks of indexing leave it. */
  function agedCache(): string {
    const dir = tempDir('lookalike-h23b-cache-');
    const days = (n: number) => new Date(Date.now() - n * 24 * 3600 * 1000);
    const put = (name: string, bytes: number, age: Date) => {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), Buffer.alloc(bytes));
      utimesSync(path.join(dir, name), age, age);
    };
    put('models/resnet50-imagenet-v2-abc.onnx', 3000, days(90));
    put('models/resnet50-imagenet-v2-abc-int8q3-old.onnx', 2000, days(45));
    put('models/resnet50-imagenet-v2-abc-int8q3-new.onnx', 2000, days(2));
    put('models/resnet50-imagenet-v2-abc-int8q3-dead.onnx.4242.tmp', 500, new Date(Date.now() - 2 * 3600 * 1000));
    put('calibrations/0123.json', 100, days(60));
    put('stores/5f3a/max-g3.usearch', 700, days(40));
    put('stores/5f3a/max-g3.rows', 300, days(40));
    put('stores/9b1c/max-g9.usearch', 700, days(1));
    // A replica last wrote its folder when it wrote its files.
    utimesSync(path.join(dir, 'stores', '5f3a'), days(40), days(40));
    return dir;
  }

  it('lists what it holds, and prunes what has not been used for --older-than days and unfinished writes', async () => {
    const dir = agedCache();
    const listing = await listCache(dir);
    expect(listing.bytes).toBe(9300);
    expect(listing.entries.map((e) => [e.name, e.kind])).toEqual([
      ['calibrations/0123.json', 'calibration'],
      ['models/resnet50-imagenet-v2-abc-int8q3-dead.onnx.4242.tmp', 'unfinished write'],
      ['models/resnet50-imagenet-v2-abc-int8q3-new.onnx', 'int8 model'],
      ['models/resnet50-imagenet-v2-abc-int8q3-old.onnx', 'int8 model'],
      ['models/resnet50-imagenet-v2-abc.onnx', 'float32 model'],
      ['stores/5f3a', 'replica ANN files'],
      ['stores/9b1c', 'replica ANN files'],
    ].map(([a, b]) => [a.split('/').join(path.sep), b]));
    const dry = await pruneCache({ dir, dryRun: true });
    expect(dry.removed).toHaveLength(5);
    expect(readdirSync(path.join(dir, 'models'))).toHaveLength(4);
    const pruned = await pruneCache({ dir });
    expect(pruned.removed.map((e) => e.name).sort()).toEqual(['calibrations/0123.json', 'models/resnet50-imagenet-v2-abc-int8q3-dead.onnx.4242.tmp', 'models/resnet50-imagenet-v2-abc-int8q3-old.onnx', 'models/resnet50-imagenet-v2-abc.onnx', 'stores/5f3a'].map((n) => n.split('/').join(path.sep)));
    expect(pruned).toMatchObject({ removedBytes: 6600, kept: 2, keptBytes: 2700 });
    expect(existsSync(path.join(dir, 'models', 'resnet50-imagenet-v2-abc-int8q3-new.onnx'))).toBe(true);
    expect(existsSync(path.join(dir, 'stores', '5f3a'))).toBe(false);
    expect((await pruneCache({ dir, all: true })).kept).toBe(0);
    expect(await codeOf(() => pruneCache({ dir, olderThanDays: -1 }))).toBe('BAD_OPTION');
  });

  it('`lookalike cache` and `lookalike cache prune` show and prune the cache LOOKALIKE_CACHE names', async () => {
    const dir = agedCache();
    const list = await cli(['cache', '--json'], { LOOKALIKE_CACHE: dir });
    expect(list.exit, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject({ dir, bytes: 9300 });
    const text = await cli(['cache'], { LOOKALIKE_CACHE: dir });
    expect(text.stdout).toMatch(/7 entries, 0\.0 MB/);
    const prune = await cli(['cache', 'prune', '--older-than', '10'], { LOOKALIKE_CACHE: dir });
    expect(prune.exit, prune.stderr).toBe(0);
    expect(prune.stdout).toMatch(/removed 5 entries/);
    const bad = await cli(['cache', 'prune', '--older-than', 'soon'], { LOOKALIKE_CACHE: dir });
    expect(bad.exit).not.toBe(0);
    expect(bad.stderr).toMatch(/BAD_OPTION/);
  });
});

// Fuzzing (fast-check). The case counts are reported in the closing note of issue 23.
export const FUZZ_RUNS = { cropText: 3000, cropObject: 3000, urlDecision: 3000, urlRefused: 300, urlAnything: 300 } as const;

describe('fuzz: the crop parser and the URL policy', () => {
  const validBox = (b: { x: number; y: number; w: number; h: number }) => [b.x, b.y, b.w, b.h].every((v) => Number.isFinite(v) && v >= 0 && v <= 1)
    && b.w >= MIN_CROP_SIDE - 1e-12 && b.h >= MIN_CROP_SIDE - 1e-12 && b.x + b.w <= 1 + 1e-12 && b.y + b.h <= 1 + 1e-12;
  /** The answer of a check: the box, or BAD_CROP; anything else thrown fails the property. */
  const outcome = (body: () => { x: number; y: number; w: number; h: number }) => {
    try {
      return body();
    } catch (err) {
      if (isLookalikeError(err, 'BAD_CROP')) return 'BAD_CROP' as const;
      throw err;
    }
  };
  const token = fc.oneof(
    fc.double({ min: -2, max: 2, noNaN: false }).map(String),
    fc.double({ min: 0, max: 1 }).map((v) => v.toFixed(4)),
    fc.constantFrom('', ' ', '0', '1', '.5', '5.', '0.', '-0', '+0.5', '0x1', '0b1', '1e-300', '1e-2', '1E0', 'NaN', 'Infinity', '-Infinity', '½', '٠.5', '0,5', '1_0', '\u00a00.5', '0.5\n'),
    fc.string({ maxLength: 6 }),
  );

  it('parseCrop: any text gives a box inside the photo or BAD_CROP, never anything else', () => {
    fc.assert(fc.property(fc.oneof(fc.array(token, { minLength: 0, maxLength: 6 }).map((t) => t.join(',')), fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 })), (text) => {
      const r = outcome(() => parseCrop(text));
      if (r !== 'BAD_CROP') {
        expect(validBox(r), `${JSON.stringify(text)} -> ${JSON.stringify(r)}`).toBe(true);
        // Only plain decimal numbers are read: no hex, no blanks taken for 0.
        expect(text.split(',').every((p) => /^\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(p))).toBe(true);
      }
    }), { numRuns: FUZZ_RUNS.cropText });
  });

  it('checkRegion: any value gives a box inside the photo or BAD_CROP; text and numbers agree', () => {
    const coordinate = fc.oneof(fc.double({ min: -1, max: 2 }), fc.double({ min: 0, max: 1 }), fc.constantFrom(0, 1, 0.01, 0.001, 0.00099, 1e-10, NaN, Infinity), fc.anything());
    fc.assert(fc.property(fc.oneof(fc.record({ x: coordinate, y: coordinate, w: coordinate, h: coordinate }, { requiredKeys: [] }), fc.anything()), (value) => {
      const r = outcome(() => checkRegion(value));
      if (r !== 'BAD_CROP') {
        expect(validBox(r)).toBe(true);
        const v = value as Record<string, number>;
        // The same box written as text is judged alike.
        const text = outcome(() => parseCrop([v.x, v.y, v.w, v.h].map((n) => String(n)).join(',')));
        if (text !== 'BAD_CROP') expect(text).toEqual(r);
      }
    }), { numRuns: FUZZ_RUNS.cropObject });
  });

  // An oracle written apart from ipaddr.js: the IPv4 ranges that must never be fetched.
  const REFUSED_V4: Array<[number, number]> = [[0, 8], [10, 8], [100 << 24 | 64 << 16, 10], [127, 8], [169 << 24 | 254 << 16, 16], [172 << 24 | 16 << 16, 12], [192 << 24 | 168 << 16, 16], [224, 4], [240, 4]]
    .map(([base, bits]) => [base < 256 ? base << 24 : base, bits]);
  const mustRefuseV4 = (n: number) => REFUSED_V4.some(([base, bits]) => (n >>> (32 - bits)) === (base >>> (32 - bits)));
  const v4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  const ipv4 = fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0x7f000001, 0xa9fea9fe, 0x0a000001, 0xc0a80001, 0xac100001, 0x64400001, 0xe0000001, 0xffffffff, 0));
  type Host = { host: string; addresses: readonly string[]; refuse: boolean | undefined };
  /** Hosts as a URL may write them, with what they resolve to and whether they must be refused (undefined: either). */
  const hosts: fc.Arbitrary<Host> = fc.oneof(
    ipv4.map((n) => ({ host: v4(n), addresses: [v4(n)], refuse: mustRefuseV4(n) ? true : undefined })),
    ipv4.map((n) => ({ host: String(n), addresses: [v4(n)], refuse: mustRefuseV4(n) ? true : undefined })),
    ipv4.map((n) => ({ host: `0x${n.toString(16)}`, addresses: [v4(n)], refuse: mustRefuseV4(n) ? true : undefined })),
    ipv4.map((n) => ({ host: `[::ffff:${v4(n)}]`, addresses: [v4(n)], refuse: mustRefuseV4(n) ? true : undefined })),
    fc.constantFrom<Host>(
      { host: '[::1]', addresses: ['::1'], refuse: true }, { host: '[::]', addresses: ['::'], refuse: true },
      { host: '[fd00::5]', addresses: ['fd00::5'], refuse: true }, { host: '[fe80::1]', addresses: ['fe80::1'], refuse: true },
      { host: '[ff02::1]', addresses: ['ff02::1'], refuse: true }, { host: '[2606:4700::1111]', addresses: ['2606:4700::1111'], refuse: false },
    ),
    fc.tuple(fc.domain(), fc.array(ipv4, { minLength: 1, maxLength: 3 })).map(([name, ns]) => ({
      host: name, addresses: ns.map(v4), refuse: ns.some(mustRefuseV4) ? true : undefined,
    })),
  );

  it('the URL policy refuses every address the oracle says is local or private, for every spelling and every answer', async () => {
    const { policyFor } = await import('../../src/image/url-policy.js');
    await fc.assert(fc.asyncProperty(hosts, fc.integer({ min: 1, max: 65535 }), async (h, port) => {
      const url = `http://${h.host}:${port}/p.jpg`;
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        return;
      }
      const resolve: Resolver = async () => h.addresses.map((address) => ({ address, family: net.isIP(address) }));
      let refused = false, connectTo: string[] = [];
      try {
        const { lookup } = policyFor(url, target, { resolve });
        if (lookup) {
          connectTo = await new Promise<string[]>((ok, fail) => lookup(target.hostname, { all: true }, (err, addresses) => (err ? fail(err) : ok((addresses as Array<{ address: string }>).map((a) => a.address)))));
        } else {
          connectTo = [target.hostname.replace(/^\[|\]$/g, '')];
        }
      } catch (err) {
        if (!isLookalikeError(err, 'IMAGE_URL_REFUSED')) throw err;
        refused = true;
      }
      if (h.refuse === true) expect(refused, url).toBe(true);
      if (h.refuse === false) expect(refused, url).toBe(false);
      // Whatever is let through is connected to exactly as checked, and is public.
      if (!refused) for (const a of connectTo) expect(refusedRange(a), `${url} -> ${a}`).toBeUndefined();
    }), { numRuns: FUZZ_RUNS.urlDecision });
  });

  it('fetchImage: refused spellings of local and private hosts never open a connection', async () => {
    const local = hosts.filter((h) => h.refuse === true);
    await fc.assert(fc.asyncProperty(local, fc.integer({ min: 1, max: 65535 }), fc.webPath(), async (h, port, urlPath) => {
      const before = attempts.length;
      const url = `http://${h.host}:${port}${urlPath.startsWith('/') ? urlPath : `/${urlPath}`}`;
      const code = await codeOf(() => fetchImage(url, { resolve: async () => h.addresses.map((address) => ({ address, family: net.isIP(address) })), retries: 0, timeoutMs: 2000 }));
      expect(code, url).toBe(URL.canParse(url) ? 'IMAGE_URL_REFUSED' : 'IMAGE_FETCH_FAILED');
      expect(attempts.slice(before), url).toEqual([]);
    }), { numRuns: FUZZ_RUNS.urlRefused });
  });

  it('fetchImage: any text as a URL ends in a coded refusal or failure, and reaches no address off this machine', async () => {
    const offMachine = (a: string) => !/^127\.|^::1$|^::ffff:127\./.test(a);
    await fc.assert(fc.asyncProperty(fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string({ maxLength: 60 }), fc.constantFrom('http://', 'http://:80/', 'https://[::1', 'http://a b/', 'file:///etc/passwd', 'http:/\\/127.0.0.1/', 'HTTP://LOCALHOST/')), async (text) => {
      // A public address written in the URL itself would be fetched: the fuzz never sends it.
      try {
        const host = new URL(text).hostname.replace(/^\[|\]$/g, '');
        if (net.isIP(host) && refusedRange(host) === undefined) return;
      } catch {
        // not a URL: fetchImage says so
      }
      const before = attempts.length;
      // Every name resolves to nothing: no DNS query leaves the machine either.
      const code = await codeOf(() => fetchImage(text, { resolve: async () => { throw Object.assign(new Error('no DNS in this test'), { code: 'ENOTFOUND' }); }, retries: 0, timeoutMs: 2000 }));
      expect(['IMAGE_URL_REFUSED', 'IMAGE_FETCH_FAILED'], text).toContain(code);
      expect(attempts.slice(before).filter(offMachine), text).toEqual([]);
    }), { numRuns: FUZZ_RUNS.urlAnything });
  });
});
