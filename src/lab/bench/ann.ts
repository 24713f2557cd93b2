/**
 * Exact against approximate search, side by side in one run:
 *  - on the index at hand: search-only p50/p99 of exact (onnxruntime GEMM), exact (JS
 *    kernel) and ANN (HNSW candidates re-ranked exactly), recall@10 of ANN vs exact, with
 *    and without filters;
 *  - synthetic: n items drawn around the index's real vectors in the served space (a real
 *    vector plus noise, renormalised), the ANN index built, saved, and loaded by a fresh
 *    serving process whose memory, load time, latency and recall are measured.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Lookalike } from '../../lookalike.js';
import { SEARCH_MODES } from '../../defaults.js';
import { backboneSpace, type EmbeddingSpace } from '../../search/space.js';
import { AnnIndex, DEFAULT_ANN_SETTINGS } from '../../search/ann.js';
import { batchTopK, topK, topKAsync, type Hit } from '../../search/kernel.js';
import { filterMask, type Filters } from '../../search/filters.js';
import { dotAt } from '../../math/linalg.js';
import { percentile } from '../../math/stats.js';

export interface Timing { p50ms: number; p99ms: number }

/** One space of an index: exact against approximate search. */
export interface SpaceSearchBench {
  space: string;
  dim: number;
  exactGemm: Timing;
  exactJs: Timing;
  /** Re-ranked from the float32 matrix in memory (just built, as `lookalike eval`). */
  ann: Timing & { recallAtK: number };
  /**
   * Loaded from its files and re-ranked from the rows file, as a server on current files.
   * None for a blend: it searches through its parts' indexes (SearchEngine.annView).
   */
  annFromFiles?: Timing & { recallAtK: number };
  build: { seconds: number; loadSeconds: number };
  bytesPerItem: { annInMemory: number; rowsOnDisk: number; exactInMemory: number };
}

export interface IndexSearchBench {
  items: number;
  queries: number;
  k: number;
  settings: typeof DEFAULT_ANN_SETTINGS;
  /** The backbone pooling, then (with a head) each head mode and the photo blend of the default mode. */
  spaces: SpaceSearchBench[];
  /** In the default space. */
  filtered: Array<{ filter: string; rows: number; annMs: number; sameIdsAsExact: number }>;
  storeBytesPerItem: number;
}

function timing(ms: number[]): Timing {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50ms: percentile(sorted, 50), p99ms: percentile(sorted, 99) };
}

function overlap(a: Hit[], b: Hit[]): number {
  const truth = new Set(b.map((h) => h.row));
  return a.filter((h) => truth.has(h.row)).length;
}

/** Search-only figures on an existing index (opened read-only: nothing is written there). */
export async function runIndexSearchBench(options: { indexDir: string; queries?: number; k?: number; log?: (m: string) => void }): Promise<IndexSearchBench> {
  const log = options.log ?? (() => {});
  const k = options.k ?? 10;
  const lookalike = await Lookalike.open(options.indexDir, { readonly: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lookalike-ann-bench-'));
  try {
    const index = lookalike.indexView();
    const n = index.size;
    const nq = Math.min(options.queries ?? 200, n);
    const rows = Array.from({ length: nq }, (_, i) => Math.floor(((i + 0.5) * n) / nq));
    const spaces: EmbeddingSpace[] = [backboneSpace(lookalike.settings.pooling, lookalike.manifest.dimension)];
    if (lookalike.head) spaces.push(...SEARCH_MODES.map((mode) => lookalike.space({ mode })), lookalike.photoSpace());
    const results: SpaceSearchBench[] = [];
    for (const space of spaces) results.push(await benchSpace(lookalike, space, rows, k, tmp, log));

    const space = lookalike.space();
    const { data, dim } = index.matrix(space);
    const vec = (r: number) => data.subarray(r * dim, (r + 1) * dim);
    const filtered: IndexSearchBench['filtered'] = [];
    const facets = lookalike.facets(['gender', 'articleType'].filter((c) => lookalike.manifest.catalog.columns.includes(c)));
    const rare = (facets.articleType ?? []).find((f) => f.count === 3) ?? (facets.articleType ?? []).at(-1);
    const filterList: Filters[] = [
      ...(facets.gender?.some((f) => f.value === 'Women') ? [{ gender: ['Women'] }] : []),
      ...(facets.articleType?.some((f) => f.value === 'Watches') ? [{ articleType: ['Watches'] }] : []),
      ...(rare ? [{ articleType: [rare.value] }] : []),
    ];
    for (const filters of filterList) {
      const mask = filterMask(index.items.map((i) => i.metadata), filters, lookalike.manifest.catalog.columns);
      let same = 0, ms = 0;
      const fq = Math.min(50, nq);
      for (const r of rows.slice(0, fq)) {
        const exact = topK(data, dim, vec(r), { k, exclude: r, mask });
        const t = performance.now();
        const hits = await index.searchAnn(space, vec(r), { k, excludeId: index.items[r].id, filters });
        ms += performance.now() - t;
        if (hits.map((h) => h.id).join() === exact.map((h) => index.items[h.row].id).join()) same++;
      }
      const [field, values] = Object.entries(filters)[0];
      filtered.push({ filter: `${field}=${values.join(',')}`, rows: mask ? mask.reduce((s, v) => s + v, 0) : n, annMs: ms / fq, sameIdsAsExact: same / fq });
    }

    const storeBytes = ['index.sqlite', 'index.sqlite-wal'].reduce((s, f) => {
      try { return s + statSync(path.join(options.indexDir, f)).size; } catch { return s; }
    }, 0);
    return { items: n, queries: nq, k, settings: DEFAULT_ANN_SETTINGS, spaces: results, filtered, storeBytesPerItem: storeBytes / n };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    await lookalike.close();
  }
}

/** Exact (GEMM, JS) and ANN (re-ranked in memory, and from its files) in one space. */
async function benchSpace(lookalike: Lookalike, space: EmbeddingSpace, rows: number[], k: number, tmp: string, log: (m: string) => void): Promise<SpaceSearchBench> {
  const index = lookalike.indexView();
  const { data, dim } = index.matrix(space);
  const n = index.size;
  let buildSeconds = 0, loadSeconds = 0, files = { index: 0, rows: 0 };
  let loaded: AnnIndex | undefined;
  if (space.parts) {
    log(`${space.id} (${dim}-d): searched through its parts' ANN indexes`);
    // Its parts come earlier in the bench's list of spaces, which saved their files here.
    for (const part of space.parts) {
      const status = AnnIndex.fileBytes(annBase(tmp, part.space));
      files = { index: files.index + status.index, rows: files.rows + status.rows };
    }
  } else {
    log(`${space.id} (${dim}-d): building the ANN index over ${n} items...`);
    const built = performance.now();
    const ann = AnnIndex.create(space.id, dim);
    ann.sync(index.items.map((i) => i.id), data, index.generation);
    buildSeconds = (performance.now() - built) / 1000;
    index.adoptAnn(space, ann);
    const base = annBase(tmp, space);
    ann.save(base, data);
    const loadStarted = performance.now();
    loaded = AnnIndex.load(base, space.id, dim);
    if (!loaded) throw new Error('the saved ANN index could not be read back');
    loaded.bindRows(index.items.map((i) => i.id));
    loadSeconds = (performance.now() - loadStarted) / 1000;
    files = AnnIndex.fileBytes(base);
  }

  const vec = (r: number) => data.subarray(r * dim, (r + 1) * dim);
  log(`  timing ${rows.length} queries each: exact (GEMM), exact (JS), ann${loaded ? ', ann from files' : ''}...`);
  await topKAsync(data, dim, vec(rows[0]), { k }); // warm-up: builds the onnxruntime session
  const gemm: number[] = [], js: number[] = [], approx: number[] = [], fromFiles: number[] = [];
  let found = 0, foundFiles = 0, total = 0;
  const row = new Float32Array(dim);
  for (const r of rows) {
    let t = performance.now();
    const exact = await topKAsync(data, dim, vec(r), { k, exclude: r });
    gemm.push(performance.now() - t);
    t = performance.now();
    topK(data, dim, vec(r), { k, exclude: r });
    js.push(performance.now() - t);
    t = performance.now();
    const hits = await index.searchAnn(space, vec(r), { k, excludeId: index.items[r].id });
    approx.push(performance.now() - t);
    found += overlap(hits.map((h) => ({ row: index.rowOf(h.id), score: h.score })), exact);
    total += exact.length;
    if (!loaded) continue;
    // The server's path: candidates from the loaded graph, each re-ranked from the rows file.
    t = performance.now();
    const candidates = loaded.searchRows(vec(r), Math.max(64, 4 * k + 1));
    const scored: Hit[] = [];
    for (const c of candidates) if (c !== r) scored.push({ row: c, score: dotAt(loaded.readRow(c, row), 0, vec(r), dim) });
    const fileHits = scored.sort((a, b) => b.score - a.score).slice(0, k);
    fromFiles.push(performance.now() - t);
    foundFiles += overlap(fileHits, exact);
  }
  loaded?.close();
  const rawHeld = lookalike.manifest.dimension * 4;
  return {
    space: space.id, dim,
    exactGemm: timing(gemm), exactJs: timing(js),
    ann: { ...timing(approx), recallAtK: found / total },
    annFromFiles: loaded ? { ...timing(fromFiles), recallAtK: foundFiles / total } : undefined,
    build: { seconds: buildSeconds, loadSeconds },
    // Exact search holds the space's float32 matrix (and, for the photo blend, the raw max
    // pooling it is computed from too); a blend's ANN memory is its parts'.
    bytesPerItem: { annInMemory: files.index / n, rowsOnDisk: files.rows / n, exactInMemory: dim * 4 + (space.parts ? rawHeld : 0) },
  };
}

function annBase(dir: string, space: EmbeddingSpace): string {
  return path.join(dir, `ann-${space.id.replace(/[^A-Za-z0-9_.-]+/g, '_')}`);
}

export interface SyntheticBench {
  items: number;
  baseItems: number;
  space: string;
  dim: number;
  noise: number;
  queries: number;
  k: number;
  build: { seconds: number; itemsPerSecond: number };
  exactGemm: Timing;
  /**
   * Mean cosine of the k-th neighbour: of real items among the real catalog, and of the
   * synthetic queries among the synthetic items. Close values mean the synthetic catalog is
   * as crowded as the real one would be at this size; a higher synthetic value, harder.
   */
  neighbourCosAtK: { real: number; synthetic: number };
  serving: ServingProbe;
  bytesPerItem: { exactInMemory: number; annOnDisk: number; annInMemory: number; fullVectorsOnDisk: number };
}

/** What a fresh serving process measured after loading the saved ANN index. */
export interface ServingProbe {
  loadSeconds: number;
  rssBeforeMB: number;
  rssAfterLoadMB: number;
  rssAfterQueriesMB: number;
  ann: Timing & { recallAtK: number };
}

/** Gaussian noise (Box-Muller), seeded: the same items every run. */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** base row + noise of norm `noise`, renormalised (so cos(item, base) ~ 1/sqrt(1 + noise^2)). */
function drawAround(base: Float32Array, dim: number, rowOfBase: number, noise: number, rand: () => number, out: Float32Array, at: number): void {
  let g2 = 0;
  for (let j = 0; j < dim; j++) { const g = rand(); out[at + j] = g; g2 += g * g; }
  const scale = noise / Math.sqrt(g2);
  let s = 0;
  for (let j = 0; j < dim; j++) {
    const v = base[rowOfBase * dim + j] + scale * out[at + j];
    out[at + j] = v;
    s += v * v;
  }
  const inv = 1 / Math.sqrt(s);
  for (let j = 0; j < dim; j++) out[at + j] *= inv;
}

/**
 * The synthetic catalog: build the ANN index over `items` vectors around the index's real
 * ones, save it with the full vectors (the store's role), then have a fresh process load it
 * and serve the queries (`runServingProbe`) while exact GEMM search gives the truth.
 */
export async function runSyntheticBench(options: {
  indexDir: string; items: number; noise?: number; queries?: number; k?: number; log?: (m: string) => void;
  /** Command line that runs `runServingProbe(dir)` in a fresh process and prints its JSON. */
  probeCommand: (dir: string) => { command: string; args: string[] };
}): Promise<SyntheticBench> {
  const log = options.log ?? (() => {});
  const k = options.k ?? 10;
  const noise = options.noise ?? 0.35;
  const n = options.items;
  const lookalike = await Lookalike.open(options.indexDir, { readonly: true });
  let base: Float32Array, dim: number, spaceId: string, baseItems: number;
  try {
    const space = lookalike.space();
    ({ data: base, dim } = lookalike.indexView().matrix(space));
    spaceId = space.id;
    baseItems = lookalike.size;
  } finally {
    await lookalike.close();
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-synthetic-'));
  try {
    log(`drawing ${n.toLocaleString('en-US')} items around ${baseItems} real vectors (${spaceId}, ${dim}-d, noise ${noise})...`);
    const rand = gaussian(12);
    const matrix = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) drawAround(base, dim, i % baseItems, noise, rand, matrix, i * dim);
    const nq = options.queries ?? 200;
    const queries = new Float32Array(nq * dim);
    for (let q = 0; q < nq; q++) drawAround(base, dim, (q * 7919) % baseItems, noise, rand, queries, q * dim);
    log('exact search for the truth (GEMM)...');
    const truth = await batchTopK(matrix, dim, queries, nq, k);
    const realRows = Int32Array.from({ length: Math.min(nq, baseItems) }, (_, i) => Math.floor((i * baseItems) / Math.min(nq, baseItems)));
    const realQueries = new Float32Array(realRows.length * dim);
    realRows.forEach((r, i) => realQueries.set(base.subarray(r * dim, (r + 1) * dim), i * dim));
    const real = await batchTopK(base, dim, realQueries, realRows.length, k, { excludeSelf: realRows });
    const meanAtK = (h: { k: number; scores: Float32Array }, count: number) => {
      let s = 0;
      for (let q = 0; q < count; q++) s += h.scores[q * h.k + h.k - 1];
      return s / count;
    };
    const neighbourCosAtK = { real: meanAtK(real, realRows.length), synthetic: meanAtK(truth, nq) };
    log(`mean cosine of the ${k}th neighbour: real ${neighbourCosAtK.real.toFixed(3)}, synthetic ${neighbourCosAtK.synthetic.toFixed(3)}`);
    const gemm: number[] = [];
    await topKAsync(matrix, dim, queries.subarray(0, dim), { k });
    for (let q = 0; q < Math.min(nq, 20); q++) {
      const t = performance.now();
      await topKAsync(matrix, dim, queries.subarray(q * dim, (q + 1) * dim), { k });
      gemm.push(performance.now() - t);
    }

    log(`building the ANN index (${DEFAULT_ANN_SETTINGS.quantization}, M=${DEFAULT_ANN_SETTINGS.connectivity})...`);
    const ids = Array.from({ length: n }, (_, i) => String(i));
    const ann = AnnIndex.create(spaceId, dim);
    const started = performance.now();
    let lastLog = 0;
    ann.sync(ids, matrix, 0, (done, total) => {
      const now = performance.now();
      if (now - lastLog > 10_000 || done === total) {
        lastLog = now;
        const rate = done / ((now - started) / 1000);
        log(`  ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} (${rate.toFixed(0)} items/s, ETA ${((total - done) / rate).toFixed(0)} s)`);
      }
    });
    const buildSeconds = (performance.now() - started) / 1000;
    // Saved as an index's ANN files are: graph + float16 vectors, key list, and the full-precision rows.
    ann.save(path.join(dir, 'ann'), matrix);
    ann.close();
    const annBytes = AnnIndex.fileBytes(path.join(dir, 'ann')).index;
    writeFileSync(path.join(dir, 'probe.json'), JSON.stringify({ n, dim, k, spaceId, truth: Array.from(truth.rows) }));
    writeFileSync(path.join(dir, 'queries.f32'), new Uint8Array(queries.buffer));

    log('a fresh serving process loads the index and answers the queries...');
    const { command, args } = options.probeCommand(dir);
    const serving = await runChild(command, args);
    return {
      items: n, baseItems, space: spaceId, dim, noise, queries: nq, k,
      build: { seconds: buildSeconds, itemsPerSecond: n / buildSeconds },
      exactGemm: timing(gemm),
      neighbourCosAtK,
      serving,
      bytesPerItem: { exactInMemory: dim * 4, annOnDisk: annBytes / n, annInMemory: (serving.rssAfterQueriesMB - serving.rssBeforeMB) * 1048576 / n, fullVectorsOnDisk: dim * 4 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runChild(command: string, args: string[]): Promise<ServingProbe> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`the serving probe exited with ${code}`));
      try { resolve(JSON.parse(out) as ServingProbe); } catch (err) { reject(err); }
    });
  });
}

/**
 * The serving side, in its own process so its memory is its own: load the saved ANN index
 * as a server does (float16 graph in memory) and re-rank each query's candidates exactly from
 * the rows file on disk (AnnIndex.readRow, the path SearchEngine takes when its files are
 * current; the OS page cache keeps hot rows).
 */
export function runServingProbe(dir: string): ServingProbe {
  const rssBefore = process.memoryUsage().rss;
  const { n, dim, k, spaceId, truth } = JSON.parse(readFileSync(path.join(dir, 'probe.json'), 'utf8')) as { n: number; dim: number; k: number; spaceId: string; truth: number[] };
  const qbytes = readFileSync(path.join(dir, 'queries.f32'));
  const queries = new Float32Array(qbytes.buffer.slice(qbytes.byteOffset, qbytes.byteOffset + qbytes.byteLength));
  const nq = queries.length / dim;
  const started = performance.now();
  const ann = AnnIndex.load(path.join(dir, 'ann'), spaceId, dim);
  if (!ann) throw new Error('the saved ANN index could not be read');
  ann.bindRows(Array.from({ length: n }, (_, i) => String(i)));
  const loadSeconds = (performance.now() - started) / 1000;
  const rssAfterLoad = process.memoryUsage().rss;
  const row = new Float32Array(dim);
  const search = (q: Float32Array): Hit[] => {
    const rows = ann.searchRows(q, Math.max(64, 4 * k));
    const hits: Hit[] = [];
    for (const r of rows) hits.push({ row: r, score: dotAt(ann.readRow(r, row), 0, q, dim) });
    return hits.sort((a, b) => b.score - a.score).slice(0, k);
  };
  for (let q = 0; q < Math.min(20, nq); q++) search(queries.subarray(q * dim, (q + 1) * dim)); // warm-up
  const ms: number[] = [];
  let found = 0;
  for (let q = 0; q < nq; q++) {
    const t = performance.now();
    const hits = search(queries.subarray(q * dim, (q + 1) * dim));
    ms.push(performance.now() - t);
    const expected = new Set(truth.slice(q * k, (q + 1) * k));
    found += hits.filter((h) => expected.has(h.row)).length;
  }
  ann.close();
  const mb = (b: number) => b / 1048576;
  return {
    loadSeconds,
    rssBeforeMB: mb(rssBefore),
    rssAfterLoadMB: mb(rssAfterLoad),
    rssAfterQueriesMB: mb(process.memoryUsage().rss),
    ann: { ...timing(ms), recallAtK: found / (nq * k) },
  };
}
