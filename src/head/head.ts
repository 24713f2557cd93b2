/**
 * A trained head: what turns an item's stored raw vectors (both poolings of the backbone
 * and the colour histogram) into the search embedding, and its file format.
 *
 *   features  both poolings, each square-rooted and L2-normalised, side by side (4,096)
 *   reduce    whitened PCA to `reduced` dimensions (head/reduce.ts)
 *   colour    the 144-bin Lab histogram, standardised
 *   network   head/network.ts: a style part and a colour part, each L2-normalised
 *   mode      the search vector is [√a · style | √b · colour] with a + b = 1, so its cosine
 *             is a · cos(style) + b · cos(colour): the mode picks a and b
 *
 * File: "LKHEAD1\n", a little-endian uint32 byte length, the JSON header (HeadMeta), zero
 * padding to a multiple of 4, then the float32 tensors in the order the header lists.
 * One file, so a head trained on one catalog can be carried to the next.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { LookalikeError } from '../errors.js';
import { SEARCH_MODES as MODES, type SearchMode as Mode } from '../defaults.js';
import type { RawVectors } from '../search/space.js';
import { applyReducer, type Reducer } from './reduce.js';
import { forward, inputWidth, type Hyper, type NetShape, type Params } from './network.js';
import { matVec } from './gemm.js';
/** Which part of the embedding a label column shapes. */
export type TaskKind = 'style' | 'colour';

export { SEARCH_MODES as MODES, type SearchMode as Mode } from '../defaults.js';

/** Share of the cosine given to the style part and the colour part (they sum to 1). */
export interface ModeWeights { style: number; colour: number }

export interface HeadMeta {
  format: 'lookalike-head';
  version: 1;
  /** Hash of the weights: names the head in caches and space ids. */
  id: string;
  /** What the raw vectors must come from: the backbone weights and image preparation. */
  backbone: { weightsId: string; fingerprint: string };
  features: { power: number; backboneDim: number; colourDim: number };
  net: NetShape;
  tasks: Array<{ column: string; kind: TaskKind; classes: string[] }>;
  modes: Record<Mode, ModeWeights>;
  defaultMode: Mode;
  /** The held-out share (isHeldOut(id, fraction)) never trained on: eval --queries uses it. */
  holdout: { fraction: number };
  trained: {
    at: string;
    catalog: string;
    items: number;
    trainItems: number;
    heldOutItems: number;
    epochs: number;
    bestEpoch: number;
    seconds: number;
    seed: number;
    hyper: Hyper;
    /** Shopper-photo views trained on besides the packshots (train/views.ts); absent: none. */
    views?: { count: number; items: number; localise: string };
  };
  /**
   * Set when the head was re-centred on a catalog other than the one it was trained on
   * (recentredHead): that catalog's item count and when.
   */
  recentred?: { items: number; at: string };
  /** Held-out figures measured at training time (see train.ts). */
  results?: unknown;
  tensors: Array<{ name: string; length: number }>;
}

/** Tensors a head needs at query time. */
const TENSORS = ['reduce.mean', 'reduce.components', 'reduce.scale', 'colour.mean', 'colour.scale', 'w1', 'b1', 'ws', 'bs', 'wc', 'bc'];

const MAGIC = Buffer.from('LKHEAD1\n', 'latin1');

export class Head {
  private readonly params: Params;
  private readonly reducer: Reducer;
  private shift?: Float32Array;

  constructor(readonly meta: HeadMeta, readonly tensors: Map<string, Float32Array>) {
    const t = (name: string) => {
      const v = tensors.get(name);
      if (!v) throw new Error(`head tensor ${name} is missing`);
      return v;
    };
    const { backboneDim, colourDim } = meta.features;
    const net = meta.net;
    const din = inputWidth(net);
    const expected: Record<string, number> = {
      'reduce.mean': 2 * backboneDim, 'reduce.components': net.reduced * 2 * backboneDim, 'reduce.scale': net.reduced,
      'colour.mean': net.colourIn, 'colour.scale': net.colourIn,
      w1: net.hidden * din, b1: net.hidden, ws: net.styleDim * net.hidden, bs: net.styleDim,
      ...(net.colourDim ? { wc: net.colourDim * (net.hidden + net.colourIn), bc: net.colourDim } : {}),
    };
    if (net.colourIn !== colourDim) throw new Error(`colour input ${net.colourIn} differs from the colour features ${colourDim}`);
    for (const [name, length] of Object.entries(expected)) {
      if (t(name).length !== length) throw new Error(`head tensor ${name} has ${t(name).length} values, expected ${length}`);
    }
    this.reducer = { d: 2 * backboneDim, k: meta.net.reduced, mean: t('reduce.mean'), components: t('reduce.components'), scale: t('reduce.scale') };
    this.params = new Map([['w1', t('w1')], ['b1', t('b1')], ['ws', t('ws')], ['bs', t('bs')]]);
    if (meta.net.colourDim) {
      this.params.set('wc', t('wc'));
      this.params.set('bc', t('bc'));
    }
  }

  get id(): string {
    return this.meta.id;
  }

  /** Width of the part a mode's vector keeps (a part with no weight is left out). */
  dim(mode: Mode): number {
    const w = this.meta.modes[mode];
    return (w.style > 0 ? this.meta.net.styleDim : 0) + (w.colour > 0 ? this.colourDim : 0);
  }

  get colourDim(): number {
    return this.meta.net.colourDim || this.meta.net.colourIn;
  }

  /** Resolves a user's mode string ('color' accepted); undefined gives the default. */
  mode(mode: string | undefined): Mode {
    if (mode === undefined || mode === '') return this.meta.defaultMode;
    const m = mode.toLowerCase() === 'color' ? 'colour' : mode.toLowerCase();
    if (!(MODES as readonly string[]).includes(m)) {
      throw new LookalikeError('BAD_OPTION', { message: `unknown similarity mode "${mode}". Modes: ${MODES.join(', ')} (default ${this.meta.defaultMode}).` });
    }
    return m as Mode;
  }

  /** Style and colour parts of every row of `raw`, in batches (onnxruntime). */
  async embedParts(raw: RawVectors): Promise<{ style: Float32Array; colour: Float32Array }> {
    const n = raw.n;
    const { styleDim } = this.meta.net;
    const cd = this.colourDim;
    const style = new Float32Array(n * styleDim);
    const colour = new Float32Array(n * cd);
    const block = 4096;
    for (let start = 0; start < n; start += block) {
      const count = Math.min(block, n - start);
      const x = await this.inputs(raw, start, count);
      const out = await forward(this.meta.net, this.params, x, count);
      style.set(out.style, start * styleDim);
      colour.set(out.colour, start * cd);
    }
    return { style, colour };
  }

  /** Network inputs of rows start..start+count: reduced backbone features, then colour. */
  async inputs(raw: RawVectors, start: number, count: number): Promise<Float32Array> {
    this.checkRaw(raw);
    const feats = backboneFeatures(raw, start, count, this.meta.features.power);
    const reduced = await applyReducer(this.reducer, feats, count);
    return this.assemble(reduced, raw, start, count);
  }

  /** Both parts of one row in plain JS (a query: no batching, well under a millisecond per layer). */
  embedPartsOne(raw: RawVectors, row: number): { style: Float32Array; colour: Float32Array } {
    this.checkRaw(raw);
    const { net } = this.meta;
    const feats = backboneFeatures(raw, row, 1, this.meta.features.power);
    const r = this.reducer;
    this.shift ??= meanShift(r);
    const reduced = matVec(r.components, r.k, r.d, feats);
    for (let c = 0; c < r.k; c++) reduced[c] = (reduced[c] - this.shift[c]) * r.scale[c];
    const x = this.assemble(reduced, raw, row, 1);
    const h = matVec(this.params.get('w1')!, net.hidden, inputWidth(net), x, this.params.get('b1'));
    for (let i = 0; i < h.length; i++) if (h[i] < 0) h[i] = 0;
    const style = normaliseVec(matVec(this.params.get('ws')!, net.styleDim, net.hidden, h, this.params.get('bs')));
    const colourIn = x.subarray(net.reduced);
    if (!net.colourDim) return { style, colour: normaliseVec(Float32Array.from(colourIn)) };
    const cin = new Float32Array(net.hidden + net.colourIn);
    cin.set(h);
    cin.set(colourIn, net.hidden);
    const colour = normaliseVec(matVec(this.params.get('wc')!, net.colourDim, cin.length, cin, this.params.get('bc')));
    return { style, colour };
  }

  /** n search vectors in `mode` from the two parts. */
  combine(style: Float32Array, colour: Float32Array, n: number, mode: Mode): Float32Array {
    const w = this.meta.modes[mode];
    const sd = this.meta.net.styleDim, cd = this.colourDim;
    const a = w.style > 0 ? Math.sqrt(w.style) : 0, b = w.colour > 0 ? Math.sqrt(w.colour) : 0;
    const dim = this.dim(mode);
    const out = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      let o = i * dim;
      if (a) { for (let j = 0; j < sd; j++) out[o + j] = a * style[i * sd + j]; o += sd; }
      if (b) for (let j = 0; j < cd; j++) out[o + j] = b * colour[i * cd + j];
    }
    // The parts are unit vectors, but a zero part (a blank photo) would leave the row short.
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = i * dim; j < (i + 1) * dim; j++) s += out[j] * out[j];
      if (s > 0 && Math.abs(s - 1) > 1e-4) {
        const inv = 1 / Math.sqrt(s);
        for (let j = i * dim; j < (i + 1) * dim; j++) out[j] *= inv;
      }
    }
    return out;
  }

  private assemble(reduced: Float32Array, raw: RawVectors, start: number, count: number): Float32Array {
    const { net } = this.meta;
    const din = inputWidth(net);
    const cm = this.tensors.get('colour.mean')!, cs = this.tensors.get('colour.scale')!;
    const x = new Float32Array(count * din);
    for (let i = 0; i < count; i++) {
      x.set(reduced.subarray(i * net.reduced, (i + 1) * net.reduced), i * din);
      const src = (start + i) * raw.colourDim;
      const dst = i * din + net.reduced;
      for (let j = 0; j < net.colourIn; j++) x[dst + j] = (raw.colour[src + j] - cm[j]) * cs[j];
    }
    return x;
  }

  private checkRaw(raw: RawVectors): void {
    if (raw.dim !== this.meta.features.backboneDim || raw.colourDim !== this.meta.features.colourDim) {
      throw new LookalikeError('HEAD_MISMATCH', {
        path: 'this index',
        trained: `${this.meta.features.backboneDim}-d features + ${this.meta.features.colourDim}-d colour`,
        indexed: `${raw.dim}-d + ${raw.colourDim}-d`,
      });
    }
  }
}

/**
 * Rows start..start+count as the head's input features: each pooling signed-power
 * normalised (x -> sign(x)|x|^power, power 0.5 damps the few very large activations that
 * dominate raw cosine) and L2-normalised, max then avg.
 */
export function backboneFeatures(raw: RawVectors, start: number, count: number, power: number): Float32Array {
  const d = raw.dim;
  const out = new Float32Array(count * 2 * d);
  for (let i = 0; i < count; i++) {
    for (let part = 0; part < 2; part++) {
      const src = part === 0 ? raw.max : raw.avg;
      const so = (start + i) * d;
      const o = i * 2 * d + part * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const v = src[so + j];
        const p = power === 0.5 ? (v >= 0 ? Math.sqrt(v) : -Math.sqrt(-v)) : power === 1 ? v : Math.sign(v) * Math.abs(v) ** power;
        out[o + j] = p;
        s += p * p;
      }
      if (s > 0) {
        const inv = 1 / Math.sqrt(s);
        for (let j = 0; j < d; j++) out[o + j] *= inv;
      }
    }
  }
  return out;
}

/**
 * The head carried to another catalog, its inputs centred on that catalog: the mean of its
 * backbone features and of its colour histograms, measured on `raw` (the catalog's stored
 * vectors; no labels), replace the training catalog's. The components, scales and network
 * stay as trained.
 *
 * Why: a catalog of another kind (small greyscale thumbnails, another studio's lighting)
 * moves every item's features by about the same offset. Centred on the training catalog,
 * that offset lands in the whitened components and the network reads it as content; centred
 * on its own mean, the new catalog's items differ from each other as the training items
 * did (the idea of AdaBN, Li et al. 2016, for a fixed linear layer). Measured with
 * `lookalike transfer` (docs/shopper-photos.md): it lifts the head on greyscale
 * thumbnails to plain features or above on every label.
 */
export function recentredHead(head: Head, raw: RawVectors): Head {
  if (raw.n < 2) throw new LookalikeError('BAD_OPTION', { message: `re-centring a head needs the catalog's vectors: ${raw.n} item(s) embedded.` });
  const { power } = head.meta.features;
  const d = 2 * raw.dim, cd = raw.colourDim;
  const mean = new Float64Array(d), colour = new Float64Array(cd);
  // In blocks: the features of a million items at once would be 16 GB.
  const block = 1024;
  for (let start = 0; start < raw.n; start += block) {
    const count = Math.min(block, raw.n - start);
    const feats = backboneFeatures(raw, start, count, power);
    for (let i = 0; i < count; i++) for (let j = 0, o = i * d; j < d; j++) mean[j] += feats[o + j];
  }
  const colours = raw.colour;
  for (let i = 0; i < raw.n; i++) for (let j = 0, o = i * cd; j < cd; j++) colour[j] += colours[o + j];
  const tensors = new Map(head.tensors);
  tensors.set('reduce.mean', Float32Array.from(mean, (v) => v / raw.n));
  tensors.set('colour.mean', Float32Array.from(colour, (v) => v / raw.n));
  const { id: _id, results: _results, ...meta } = head.meta;
  const recentred = { ...meta, recentred: { items: raw.n, at: new Date().toISOString() } };
  return new Head({ ...recentred, id: headId(recentred, tensors) }, tensors);
}

/** mean · component for each component: the centring of a single vector, computed once. */
function meanShift(r: Reducer): Float32Array {
  return matVec(r.components, r.k, r.d, r.mean);
}

function normaliseVec(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  if (s > 0) {
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < v.length; i++) v[i] *= inv;
  }
  return v;
}

/** The identity of a backbone's raw vectors: weights plus image preparation. */
export function backboneKey(weightsId: string, fingerprint: string): string {
  return `${weightsId} ${fingerprint}`;
}

/** Hash of a head's tensors and what they mean, so that two different heads never share an id. */
export function headId(meta: Omit<HeadMeta, 'id' | 'tensors' | 'results'>, tensors: Map<string, Float32Array>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ backbone: meta.backbone, features: meta.features, net: meta.net, modes: meta.modes, tasks: meta.tasks }));
  for (const name of TENSORS) {
    const t = tensors.get(name);
    if (t) h.update(name).update(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  }
  return h.digest('hex').slice(0, 12);
}

export function encodeHead(head: Head): Buffer {
  const names = TENSORS.filter((n) => head.tensors.has(n));
  const meta: HeadMeta = { ...head.meta, tensors: names.map((name) => ({ name, length: head.tensors.get(name)!.length })) };
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const headerEnd = MAGIC.length + 4 + json.length;
  const pad = (4 - (headerEnd % 4)) % 4;
  const total = headerEnd + pad + names.reduce((s, n) => s + head.tensors.get(n)!.byteLength, 0);
  const buf = Buffer.alloc(total);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(json.length, MAGIC.length);
  json.copy(buf, MAGIC.length + 4);
  let off = headerEnd + pad;
  for (const name of names) {
    const t = head.tensors.get(name)!;
    Buffer.from(t.buffer, t.byteOffset, t.byteLength).copy(buf, off);
    off += t.byteLength;
  }
  return buf;
}

export function decodeHead(buf: Buffer, label: string): Head {
  const bad = (reason: string): never => {
    throw new LookalikeError('HEAD_UNREADABLE', { path: label, reason });
  };
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) bad('not a head file');
  const len = buf.readUInt32LE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + len;
  if (headerEnd > buf.length) bad('truncated header');
  let meta: HeadMeta;
  try {
    meta = JSON.parse(buf.subarray(MAGIC.length + 4, headerEnd).toString('utf8')) as HeadMeta;
  } catch {
    return bad('damaged header');
  }
  if (meta.format !== 'lookalike-head') bad('not a head file');
  if (meta.version !== 1) bad(`format version ${meta.version}; this Lookalike reads version 1`);
  let off = headerEnd + ((4 - (headerEnd % 4)) % 4);
  const tensors = new Map<string, Float32Array>();
  for (const { name, length } of meta.tensors ?? []) {
    if (off + length * 4 > buf.length) bad('truncated weights');
    // Copy: the buffer's offset need not be float-aligned, and the head outlives it.
    const t = new Float32Array(length);
    Buffer.from(t.buffer).set(buf.subarray(off, off + length * 4));
    for (let i = 0; i < length; i++) if (!Number.isFinite(t[i])) bad(`weights of ${name} are not finite`);
    tensors.set(name, t);
    off += length * 4;
  }
  try {
    return new Head(meta, tensors);
  } catch (err) {
    return bad((err as Error).message);
  }
}

export async function writeHeadFile(head: Head, file: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, encodeHead(head));
  await rename(tmp, file);
}

export function readHeadFile(file: string): Head {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LookalikeError('HEAD_UNREADABLE', { path: file, reason: code === 'ENOENT' ? 'no such file' : String(code ?? err) });
  }
  return decodeHead(buf, file);
}
