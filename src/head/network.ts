/**
 * The head's network and its training step, with hand-written gradients.
 *
 *   x = [reduced backbone features (whitened PCA of both poolings) | colour histogram, standardised]
 *   h = ReLU(W1 x + b1)                              hidden layer (dropout while training)
 *   style  = normalise(Ws h + bs)                    learns the style label columns
 *   colour = normalise(Wc [h | colour hist] + bc)    learns the colour label columns; the
 *                                                    histogram also reaches it directly
 *
 * Each label column is a cosine classifier on its part (normalised class vectors, scale
 * s, additive margin m: CosFace), so the classes become directions in the embedding and
 * nearest neighbours by cosine inherit them. Losses are class-weighted (labels.ts
 * classWeights) against the catalog's imbalance, with a little label smoothing.
 *
 * Large products go through onnxruntime (gemm.ts); the rest are plain loops over
 * Float32Array. Optimiser: AdamW.
 */
import { gemm, mat, type Mat } from './gemm.js';
import { Random } from '../math/random.js';

export interface NetShape {
  /** Reduced backbone features. */
  reduced: number;
  /** Colour histogram length (the last inputs). */
  colourIn: number;
  hidden: number;
  styleDim: number;
  /** 0 when no colour column is learnt: the colour part is then the histogram itself. */
  colourDim: number;
}

export interface TaskSpec {
  name: string;
  group: 'style' | 'colour';
  classes: number;
  /** Weight of this task's loss. */
  weight: number;
  /** Loss weight per class (imbalance). */
  classWeights: Float32Array;
}

export interface Hyper {
  lr: number;
  weightDecay: number;
  dropout: number;
  inputDropout: number;
  scale: number;
  margin: number;
  smoothing: number;
}

export const DEFAULT_HYPER: Hyper = { lr: 2e-3, weightDecay: 1e-4, dropout: 0.4, inputDropout: 0.1, scale: 16, margin: 0.1, smoothing: 0.1 };

/** Named parameter tensors; the classifier tensors are `task:<name>`. */
export type Params = Map<string, Float32Array>;

export function inputWidth(s: NetShape): number {
  return s.reduced + s.colourIn;
}

export function initParams(shape: NetShape, tasks: TaskSpec[], rng: Random): Params {
  const p: Params = new Map();
  const normal = (n: number, sd: number) => {
    const a = new Float32Array(n);
    rng.fillNormal(a, sd);
    return a;
  };
  const din = inputWidth(shape);
  p.set('w1', normal(shape.hidden * din, Math.sqrt(2 / din)));
  p.set('b1', new Float32Array(shape.hidden));
  p.set('ws', normal(shape.styleDim * shape.hidden, Math.sqrt(1 / shape.hidden)));
  p.set('bs', new Float32Array(shape.styleDim));
  if (shape.colourDim) {
    const cin = shape.hidden + shape.colourIn;
    p.set('wc', normal(shape.colourDim * cin, Math.sqrt(1 / cin)));
    p.set('bc', new Float32Array(shape.colourDim));
  }
  for (const t of tasks) p.set(`task:${t.name}`, normal(t.classes * (t.group === 'style' ? shape.styleDim : shape.colourDim), 1));
  return p;
}

/** Embeddings of rows of `x` (n x inputWidth), no dropout. */
export async function forward(shape: NetShape, p: Params, x: Float32Array, n: number): Promise<{ style: Float32Array; colour: Float32Array; colourDim: number }> {
  const din = inputWidth(shape);
  const h = (await gemm(mat(x, n, din), mat(p.get('w1')!, shape.hidden, din), { transB: true, bias: p.get('b1') })).data;
  for (let i = 0; i < h.length; i++) if (h[i] < 0) h[i] = 0;
  const style = (await gemm(mat(h, n, shape.hidden), mat(p.get('ws')!, shape.styleDim, shape.hidden), { transB: true, bias: p.get('bs') })).data;
  normalise(style, shape.styleDim);
  if (!shape.colourDim) {
    const colour = new Float32Array(n * shape.colourIn);
    for (let i = 0; i < n; i++) colour.set(x.subarray(i * din + shape.reduced, (i + 1) * din), i * shape.colourIn);
    return { style, colour: normalise(colour, shape.colourIn), colourDim: shape.colourIn };
  }
  const cin = concatColour(h, x, n, shape);
  const colour = (await gemm(mat(cin, n, shape.hidden + shape.colourIn), mat(p.get('wc')!, shape.colourDim, shape.hidden + shape.colourIn), { transB: true, bias: p.get('bc') })).data;
  return { style, colour: normalise(colour, shape.colourDim), colourDim: shape.colourDim };
}

function concatColour(h: Float32Array, x: Float32Array, n: number, shape: NetShape): Float32Array {
  const din = inputWidth(shape);
  const cin = shape.hidden + shape.colourIn;
  const out = new Float32Array(n * cin);
  for (let i = 0; i < n; i++) {
    out.set(h.subarray(i * shape.hidden, (i + 1) * shape.hidden), i * cin);
    out.set(x.subarray(i * din + shape.reduced, (i + 1) * din), i * cin + shape.hidden);
  }
  return out;
}

/** L2-normalises rows in place; returns the norms (zero rows stay zero, norm 0). */
function normaliseWithNorms(data: Float32Array, dim: number): Float32Array {
  const n = data.length / dim;
  const norms = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = r * dim, e = j + dim; j < e; j++) s += data[j] * data[j];
    const norm = Math.sqrt(s);
    norms[r] = norm;
    if (norm > 0) for (let j = r * dim, e = j + dim; j < e; j++) data[j] /= norm;
  }
  return norms;
}

function normalise(data: Float32Array, dim: number): Float32Array {
  normaliseWithNorms(data, dim);
  return data;
}

/** Gradient through y = v / |v| given y, |v| and dL/dy (in place into `dy`). */
function backNormalise(y: Float32Array, norms: Float32Array, dy: Float32Array, dim: number): void {
  const n = norms.length;
  for (let r = 0; r < n; r++) {
    const o = r * dim;
    let d = 0;
    for (let j = 0; j < dim; j++) d += y[o + j] * dy[o + j];
    const inv = norms[r] > 1e-12 ? 1 / norms[r] : 0;
    for (let j = 0; j < dim; j++) dy[o + j] = (dy[o + j] - y[o + j] * d) * inv;
  }
}

function columnSums(m: Mat): Float32Array {
  const out = new Float32Array(m.cols);
  for (let i = 0; i < m.rows; i++) for (let j = 0, o = i * m.cols; j < m.cols; j++) out[j] += m.data[o + j];
  return out;
}

export interface StepResult {
  /** Mean loss per task over its labelled rows in the batch. */
  loss: Record<string, number>;
  grads: Params;
}

/**
 * Loss and gradients for one batch. `x` holds the batch rows (b x inputWidth), `targets`
 * per task the class per row (-1 = none).
 */
export async function step(shape: NetShape, tasks: TaskSpec[], p: Params, hyper: Hyper, x: Float32Array, b: number, targets: Int32Array[], rng: Random): Promise<StepResult> {
  const din = inputWidth(shape);
  const H = shape.hidden;
  // Input dropout on the reduced backbone features (the colour histogram is kept whole).
  if (hyper.inputDropout > 0) {
    const keep = 1 - hyper.inputDropout;
    for (let i = 0; i < b; i++) {
      for (let j = i * din, e = j + shape.reduced; j < e; j++) x[j] = rng.next() < keep ? x[j] / keep : 0;
    }
  }
  const z1 = (await gemm(mat(x, b, din), mat(p.get('w1')!, H, din), { transB: true, bias: p.get('b1') })).data;
  // gate = ReLU'(z) times the dropout multiplier; h = z * gate.
  const gate = new Float32Array(z1.length);
  const keep = 1 - hyper.dropout;
  for (let i = 0; i < z1.length; i++) {
    const g = z1[i] > 0 && (hyper.dropout <= 0 || rng.next() < keep) ? 1 / keep : 0;
    gate[i] = g;
    z1[i] *= g;
  }
  const h = z1;
  const style = (await gemm(mat(h, b, H), mat(p.get('ws')!, shape.styleDim, H), { transB: true, bias: p.get('bs') })).data;
  const styleNorms = normaliseWithNorms(style, shape.styleDim);
  let cin: Float32Array | undefined, colour: Float32Array | undefined, colourNorms: Float32Array | undefined;
  if (shape.colourDim) {
    cin = concatColour(h, x, b, shape);
    colour = (await gemm(mat(cin, b, H + shape.colourIn), mat(p.get('wc')!, shape.colourDim, H + shape.colourIn), { transB: true, bias: p.get('bc') })).data;
    colourNorms = normaliseWithNorms(colour, shape.colourDim);
  }
  const dStyle = new Float32Array(style.length);
  const dColour = colour ? new Float32Array(colour.length) : undefined;
  const grads: Params = new Map();
  const loss: Record<string, number> = {};

  for (let t = 0; t < tasks.length; t++) {
    const task = tasks[t];
    const emb = task.group === 'style' ? style : colour!;
    const dEmb = task.group === 'style' ? dStyle : dColour!;
    const dim = task.group === 'style' ? shape.styleDim : shape.colourDim;
    const C = task.classes;
    const w = p.get(`task:${task.name}`)!;
    const wn = Float32Array.from(w);
    const wNorms = normaliseWithNorms(wn, dim);
    const cos = (await gemm(mat(emb, b, dim), mat(wn, C, dim), { transB: true })).data;
    const y = targets[t];
    // dL/dcos per row: s * weight * (softmax - smoothed target) / b.
    let total = 0, labelled = 0;
    const s = hyper.scale, m = hyper.margin, eps = hyper.smoothing;
    const logits = new Float64Array(C);
    for (let i = 0; i < b; i++) {
      const o = i * C;
      const yi = y[i];
      if (yi < 0) { cos.fill(0, o, o + C); continue; }
      let max = -Infinity;
      for (let c = 0; c < C; c++) {
        const logit = s * (cos[o + c] - (c === yi ? m : 0));
        logits[c] = logit;
        if (logit > max) max = logit;
      }
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp(logits[c] - max);
      const logSum = max + Math.log(sum);
      const rw = task.weight * task.classWeights[yi];
      let rowLoss = 0;
      for (let c = 0; c < C; c++) {
        const logProb = logits[c] - logSum;
        const target = (c === yi ? 1 - eps : 0) + eps / C;
        rowLoss -= target * logProb;
        cos[o + c] = (s * rw * (Math.exp(logProb) - target)) / b;
      }
      total += rowLoss;
      labelled++;
    }
    loss[task.name] = labelled ? total / labelled : 0;
    const dcos = mat(cos, b, C);
    const dE = (await gemm(dcos, mat(wn, C, dim))).data;
    for (let i = 0; i < dE.length; i++) dEmb[i] += dE[i];
    const dW = (await gemm(dcos, mat(emb, b, dim), { transA: true })).data;
    backNormalise(wn, wNorms, dW, dim);
    grads.set(`task:${task.name}`, dW);
  }

  backNormalise(style, styleNorms, dStyle, shape.styleDim);
  const dS = mat(dStyle, b, shape.styleDim);
  grads.set('ws', (await gemm(dS, mat(h, b, H), { transA: true })).data);
  grads.set('bs', columnSums(dS));
  const dh = (await gemm(dS, mat(p.get('ws')!, shape.styleDim, H))).data;
  if (shape.colourDim && dColour && colour && colourNorms && cin) {
    backNormalise(colour, colourNorms, dColour, shape.colourDim);
    const dC = mat(dColour, b, shape.colourDim);
    const cw = H + shape.colourIn;
    grads.set('wc', (await gemm(dC, mat(cin, b, cw), { transA: true })).data);
    grads.set('bc', columnSums(dC));
    const dcin = (await gemm(dC, mat(p.get('wc')!, shape.colourDim, cw))).data;
    for (let i = 0; i < b; i++) for (let j = 0; j < H; j++) dh[i * H + j] += dcin[i * cw + j];
  }
  for (let i = 0; i < dh.length; i++) dh[i] *= gate[i];
  const dZ = mat(dh, b, H);
  grads.set('w1', (await gemm(dZ, mat(x, b, din), { transA: true })).data);
  grads.set('b1', columnSums(dZ));
  return { loss, grads };
}

/** AdamW with bias correction; decay applies to the layers' matrices only. */
export class AdamW {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;

  constructor(private readonly beta1 = 0.9, private readonly beta2 = 0.999, private readonly eps = 1e-8) {}

  update(params: Params, grads: Params, lr: number, weightDecay: number): void {
    this.t++;
    const c1 = 1 - this.beta1 ** this.t, c2 = 1 - this.beta2 ** this.t;
    for (const [name, g] of grads) {
      const w = params.get(name)!;
      let m = this.m.get(name), v = this.v.get(name);
      if (!m || !v) {
        m = new Float32Array(w.length);
        v = new Float32Array(w.length);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      // Classifier vectors are normalised before use: shrinking them would only raise their step size.
      const decay = name.startsWith('b') || name.startsWith('task:') ? 0 : lr * weightDecay;
      const b1 = this.beta1, b2 = this.beta2, eps = this.eps;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        w[i] -= lr * (m[i] / c1) / (Math.sqrt(v[i] / c2) + eps) + decay * w[i];
      }
    }
  }
}
