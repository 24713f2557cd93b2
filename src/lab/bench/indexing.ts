/**
 * Indexing throughput, side by side in one run on the same images: the default
 * `lookalike index` (int8 at 224x224), `lookalike index --precision fp32` (float32 at 224x224, the
 * default before), and a plain embed-only float32 pipeline (bench/plain.ts). Each is timed from
 * the start of the call to the last vector written (model loading, catalog reading and,
 * for int8, calibration included: what a fresh index costs), best of `rounds`, the three
 * taking turns so that load from other work hits them alike. Then the cosine between int8
 * and float32 vectors of the same images, and which operators the int8 model spends its
 * time in (onnxruntime's profile: the integer kernels must be the ones that run).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCatalog } from '../../catalog/index.js';
import { buildIndex } from '../../indexing/build.js';
import { prepareImage } from '../../image/prepare.js';
import { prepareOptionsFor } from '../../image/options.js';
import { Embedder } from '../../model/embedder.js';
import { defaultSettings, type EmbeddingSettings } from '../../model/registry.js';
import { SqliteStore } from '../../store/sqlite.js';
import { runPlainPipeline } from './plain.js';

export interface IndexingRun { label: string; settings: string; images: number; seconds: number; imagesPerSecond: number }

export interface IndexingBench {
  images: number;
  batch: number;
  rounds: number;
  runs: { default: IndexingRun; fp32: IndexingRun; plain: IndexingRun };
  speedup: { vsFp32: number; vsPlain: number };
  /** cosine of max-pooled vectors of the same images: int8 vs float32 at the same size, and the new default vs float32 224x224 */
  cosine: { sameSize: { min: number; median: number }; vsFp32At224: { min: number; median: number } };
  /** the int8 model's operator time shares, from onnxruntime's profile */
  int8Ops: Array<{ op: string; share: number; nodes: number }>;
}

const FP32_224: Partial<EmbeddingSettings> = { width: 224, height: 224, precision: 'fp32' };

export async function runIndexingBench(options: { catalogDir: string; images?: number; batch?: number; rounds?: number; log?: (m: string) => void }): Promise<IndexingBench> {
  const log = options.log ?? (() => {});
  const n = options.images ?? 480, batch = options.batch ?? 16, rounds = options.rounds ?? 2;
  const catalog = await readCatalog(options.catalogDir);
  // Evenly spread over the catalog, always the same ones.
  const step = Math.max(1, Math.floor(catalog.items.length / n));
  const chosen = catalog.items.filter((_, i) => i % step === 0).slice(0, n);
  const ids = new Set(chosen.map((i) => i.id));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lookalike-bench-'));
  const defaults = defaultSettings();
  const describe = (s: EmbeddingSettings) => `${s.precision} ${s.width}x${s.height}`;
  const best: Record<'default' | 'fp32' | 'plain', IndexingRun | undefined> = { default: undefined, fp32: undefined, plain: undefined };
  const keep = (key: keyof typeof best, run: IndexingRun) => { if (!best[key] || run.seconds < best[key]!.seconds) best[key] = run; };
  const index = async (label: string, dir: string, settings: Partial<EmbeddingSettings>) => {
    rmSync(dir, { recursive: true, force: true });
    const t = performance.now();
    const report = await buildIndex({ catalogDir: options.catalogDir, indexDir: dir, select: (id) => ids.has(id), settings, batchSize: batch });
    const seconds = (performance.now() - t) / 1000;
    return { label, settings: describe(defaultSettings(settings)), images: report.added, seconds, imagesPerSecond: report.added / seconds };
  };
  try {
    for (let r = 0; r < rounds; r++) {
      log(`round ${r + 1}/${rounds}: ${chosen.length} images, three pipelines...`);
      keep('plain', { label: 'plain embed-only pipeline', settings: 'fp32 224x224', ...await runPlainPipeline(chosen.map((i) => i.imagePath), path.join(tmp, 'plain.f32'), { backbone: defaults.backbone, batch }) });
      keep('fp32', await index('lookalike index --precision fp32', path.join(tmp, 'fp32'), FP32_224));
      keep('default', await index('lookalike index (the default)', path.join(tmp, 'default'), {}));
    }
    // The float32 run is at the default's size already, unless the default size changes.
    const sameSizeDir = defaults.width === FP32_224.width && defaults.height === FP32_224.height ? path.join(tmp, 'fp32') : path.join(tmp, 'fp32-same');
    if (sameSizeDir !== path.join(tmp, 'fp32')) {
      log('cosine int8 vs float32 at the same size...');
      await index('', sameSizeDir, { width: defaults.width, height: defaults.height, precision: 'fp32' });
    }
    const vectors = (dir: string) => {
      const store = SqliteStore.open(dir, { readonly: true });
      try {
        const m = store.loadMatrix('max');
        return new Map(m.ids.map((id, r) => [id, m.data.subarray(r * m.dim, (r + 1) * m.dim)]));
      } finally { store.close(); }
    };
    const int8 = vectors(path.join(tmp, 'default'));
    const cosines = (other: Map<string, Float32Array>) => {
      const c = [...int8].filter(([id]) => other.has(id)).map(([id, v]) => cosine(v, other.get(id)!)).sort((a, b) => a - b);
      return { min: c[0], median: c[c.length >> 1] };
    };
    const cosine_ = { sameSize: cosines(vectors(sameSizeDir)), vsFp32At224: cosines(vectors(path.join(tmp, 'fp32'))) };
    log('profiling the int8 model...');
    const int8Ops = await profileInt8(path.join(tmp, 'default'), chosen.slice(0, 2 * batch).map((i) => i.imagePath), batch, path.join(tmp, 'profile'));
    const runs = { default: best.default!, fp32: best.fp32!, plain: best.plain! };
    return {
      images: chosen.length, batch, rounds, runs,
      speedup: { vsFp32: runs.default.imagesPerSecond / runs.fp32.imagesPerSecond, vsPlain: runs.default.imagesPerSecond / runs.plain.imagesPerSecond },
      cosine: cosine_, int8Ops,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return d / Math.sqrt(na * nb);
}

/** Time share of each operator type over a few batches through the index's int8 model. */
async function profileInt8(indexDir: string, files: string[], batch: number, prefix: string): Promise<IndexingBench['int8Ops']> {
  const store = SqliteStore.open(indexDir, { readonly: true });
  const manifest = store.getManifest()!;
  store.close();
  const settings = manifest.settings;
  const embedder = await Embedder.create(settings.backbone, { precision: 'int8', calibration: manifest.calibration, profilePrefix: prefix });
  const prep = prepareOptionsFor(settings);
  const plane = 3 * settings.width * settings.height;
  for (let b = 0; b < files.length; b += batch) {
    const chunk = files.slice(b, b + batch);
    const pixels = new Float32Array(chunk.length * plane);
    (await Promise.all(chunk.map((f) => prepareImage(f, prep)))).forEach((p, i) => pixels.set(p.tensor, i * plane));
    await embedder.run(pixels, chunk.length, settings.height, settings.width);
  }
  embedder.endProfiling();
  await embedder.release();
  const dir = path.dirname(prefix);
  const file = readdirSync(dir).find((f) => f.startsWith(path.basename(prefix)) && f.endsWith('.json'));
  if (!file) return [];
  const events = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Array<{ cat?: string; name?: string; dur?: number; args?: { op_name?: string } }>;
  const byOp = new Map<string, { dur: number; nodes: Set<string> }>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    const entry = byOp.get(e.args.op_name) ?? { dur: 0, nodes: new Set<string>() };
    entry.dur += e.dur ?? 0;
    entry.nodes.add(e.name);
    byOp.set(e.args.op_name, entry);
    total += e.dur ?? 0;
  }
  return [...byOp].map(([op, v]) => ({ op, share: total ? v.dur / total : 0, nodes: v.nodes.size })).sort((a, b) => b.share - a.share);
}
