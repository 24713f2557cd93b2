/**
 * Static int8 quantisation of the converted backbone (model/convert.ts), in TypeScript
 * like the converter, so that onnxruntime's CPU kernels run ResNet50 in integer
 * arithmetic (QLinearConv, QLinearAdd): about twice the float32 speed on two cores.
 *
 * Three steps, each a pure function of bytes and numbers:
 *   1. `foldModel`: BatchNormalization is folded into the preceding Conv (weights and bias
 *      rescaled per output channel), so each Conv's weights are what gets quantised.
 *   2. `calibrationModel` + `calibrate`: the folded float graph with every tensor that
 *      will be quantised as an extra output, run on catalog images; the range each tensor
 *      takes on them is its calibration (min/max over the images).
 *   3. `quantiseModel`: QOperator graph. Activations are uint8 per tensor (asymmetric; a
 *      ReLU output gets zero point 0, so the clamp to 0..255 *is* the ReLU and the ReLU
 *      node goes away); Conv weights are int8 per output channel, symmetric, within +-64
 *      since version 5 (7 bits). x86 CPUs without VNNI (AVX2, AVX-512 without VNNI: most
 *      rented servers) add each pair of uint8 x int8 products in saturating int16; with
 *      8-bit weights (versions 3 and 4) those sums clipped and an AVX2 machine lost 4-5
 *      points of precision@5 while the VNNI machine the default was tuned on saw nothing.
 *      With 7 bits no pair can leave int16 (2 x 255 x 64 = 32,640), so every x86-64 CPU
 *      computes the same integers: the same vectors bit for bit (checked under qemu's
 *      Haswell, test/integration/quantise-parity.test.ts). The cost, measured on the first 3,000
 *      dev rows: articleType precision@5 0.6844 against float32's 0.6861 (8-bit on VNNI:
 *      cosine to float32 median 0.996, 7-bit 0.992). Every Conv is integer, the first one
 *      included since version 4 (below). Biases are int32 at the scale x_scale * w_scale.
 *      The last residual Add, its ReLU and everything after it (both poolings, the
 *      feature map, the classifier) stay float32: they are cheap and are what the index
 *      stores, so they are not rounded to 256 levels.
 */
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;
type GraphProto = onnxProto.onnx.IGraphProto;

/**
 * Bump when the quantised graph changes for the same calibration, so cached files are not
 * reused. A calibration records the version that measured it, and its graph is built the
 * way that version built it (QUANTISERS_BUILT), so indexes made before keep embedding
 * their queries exactly as they embedded their catalog.
 */
export const QUANTISER_VERSION = 5;
/** Versions whose graphs this quantiser still builds: 3 kept the first Conv in float32, 3 and 4 had 8-bit weights. */
export const QUANTISERS_BUILT: readonly number[] = [3, 4, 5];

/**
 * The largest weight magnitude a version writes. Version 5: 64, so that no pair of
 * products of a uint8 activation (<= 255) and a weight can leave int16 (2 x 255 x 64 =
 * 32,640 <= 32,767), the sum x86 CPUs without VNNI form with VPMADDUBSW, saturating.
 * Versions 3 and 4: 127, whose pair sums saturate there (see `saturatesWithoutVnni`).
 */
export function weightQmaxOf(quantiser: number): number {
  return quantiser >= 5 ? 64 : 127;
}

/** The largest sum of two uint8 x int8 products that int16 holds (VPMADDUBSW saturates beyond). */
export const INT16_MAX = 32_767;
/** uint8 activations: the largest value a product's activation side takes. */
export const ACTIVATION_MAX = 255;

/**
 * Whether a version's integer Convs can saturate on an x86 CPU without VNNI: where
 * 2 x 255 x the weight bound exceeds int16, onnxruntime's u8 x s8 kernels there clip the
 * pair sums and the vectors change (cosine to the same photo on a VNNI CPU down to 0.65).
 */
export function saturatesWithoutVnni(quantiser: number): boolean {
  return 2 * ACTIVATION_MAX * weightQmaxOf(quantiser) > INT16_MAX;
}

/**
 * Version 3 kept the first Conv in float32: it sees the image itself (3 channels, where
 * int8 loses most: worst cosine to float32 of 64 catalog photos 0.9877 -> 0.9835) and is
 * ~3% of the operations. But at 224x224 that float Conv, the reordering of its output out
 * of onnxruntime's blocked layout and the float max pooling took 37% of the int8 model's
 * time (QLinearConv 58%); version 4 runs it as a QLinearConv too.
 */
const keepFirstConvFloat = (node: NodeProto) => node.opType === 'Conv' && node.input?.[0] === 'input';
const keepNothingFloat = () => false;

/** Calibrated ranges: what an int8 index records in its manifest, so every process derives the same model. */
export interface Calibration {
  /** The quantiser that measured it (QUANTISER_VERSION): another one would build another graph. */
  quantiser: number;
  method: 'minmax';
  /** Images it was measured on, and at which input size. */
  images: number;
  width: number;
  height: number;
  /** tensor name -> [min, max] over the calibration images */
  ranges: Record<string, [number, number]>;
}

/** A short, stable id of a calibration (part of the cached model's name). */
export function calibrationId(c: Calibration): string {
  const names = Object.keys(c.ranges).sort();
  const text = JSON.stringify([c.quantiser, c.method, c.images, c.width, c.height, names.map((n) => [n, c.ranges[n]])]);
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/**
 * How a model's arithmetic is named where two must match (MODEL_MISMATCH): "int8
 * calibration <id>", or "float32". Another calibration is another model: its vectors differ
 * from this one's at cosine ~0.99.
 */
export function arithmeticOf(c: Calibration | undefined): string {
  return c ? `int8 calibration ${calibrationId(c)}` : 'float32';
}

interface FloatTensor { dims: number[]; data: Float32Array }

/** A float graph held as nodes plus float initialisers (the converter's output is all float). */
export interface FoldedModel {
  graph: GraphProto;
  nodes: NodeProto[];
  weights: Map<string, FloatTensor>;
}

function floatData(t: TensorProto): Float32Array {
  if (t.dataType !== onnx.TensorProto.DataType.FLOAT) throw new Error(`initializer ${t.name}: only float initialisers can be folded`);
  if (t.rawData?.length) {
    // Copy: raw data inside the decoded buffer is not 4-byte aligned.
    const out = new Float32Array(t.rawData.length / 4);
    new Uint8Array(out.buffer).set(t.rawData);
    return out;
  }
  return Float32Array.from(t.floatData ?? []);
}

function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

/** Parses converted model bytes and folds every BatchNormalization into the Conv before it. */
export function foldModel(bytes: Uint8Array): FoldedModel {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const weights = new Map<string, FloatTensor>();
  const others: TensorProto[] = [];
  for (const t of graph.initializer ?? []) {
    if (t.dataType === onnx.TensorProto.DataType.FLOAT) weights.set(t.name!, { dims: (t.dims ?? []).map(Number), data: floatData(t) });
    else others.push(t);
  }
  const consumers = consumerCounts(graph.node ?? []);
  const producer = new Map<string, NodeProto>();
  const nodes: NodeProto[] = [];
  for (const node of graph.node ?? []) {
    const input = node.input?.[0] ?? '';
    const conv = producer.get(input);
    if (node.opType === 'BatchNormalization' && conv?.opType === 'Conv' && consumers.get(input) === 1) {
      const [, scaleName, biasName, meanName, varName] = node.input!;
      const eps = attr(node, 'epsilon')?.f ?? 1e-5;
      const W = weights.get(conv.input![1])!;
      const cout = W.dims[0];
      const per = W.data.length / cout;
      const gamma = weights.get(scaleName)!.data, beta = weights.get(biasName)!.data;
      const mean = weights.get(meanName)!.data, variance = weights.get(varName)!.data;
      const oldBias = conv.input![2] ? weights.get(conv.input![2])!.data : new Float32Array(cout);
      const w = new Float32Array(W.data.length), b = new Float32Array(cout);
      for (let o = 0; o < cout; o++) {
        const k = gamma[o] / Math.sqrt(variance[o] + eps);
        for (let j = 0; j < per; j++) w[o * per + j] = W.data[o * per + j] * k;
        b[o] = (oldBias[o] - mean[o]) * k + beta[o];
      }
      const wName = `${conv.input![1]}:folded`, bName = `${conv.input![1]}:folded_bias`;
      weights.set(wName, { dims: W.dims, data: w });
      weights.set(bName, { dims: [cout], data: b });
      conv.input = [conv.input![0], wName, bName];
      conv.output = [node.output![0]];
      producer.set(node.output![0], conv);
      continue;
    }
    for (const out of node.output ?? []) producer.set(out, node);
    nodes.push(node);
  }
  // Keep only the initialisers the folded graph still uses.
  const used = new Set(nodes.flatMap((n) => n.input ?? []));
  for (const name of [...weights.keys()]) if (!used.has(name)) weights.delete(name);
  graph.initializer = others.filter((t) => used.has(t.name!));
  return { graph, nodes, weights };
}

function consumerCounts(nodes: NodeProto[]): Map<string, number> {
  const count = new Map<string, number>();
  for (const n of nodes) for (const i of n.input ?? []) count.set(i, (count.get(i) ?? 0) + 1);
  return count;
}

/**
 * How the folded graph is quantised: which nodes become integer "units" (a Conv or an Add,
 * with the ReLU after it absorbed), and the tensors whose ranges calibration measures.
 */
interface Plan {
  /** node index -> the ReLU node index it absorbs */
  absorbs: Map<number, number>;
  /** node indices that stay float (the last Add onwards, and every non-integer op) */
  float: Set<number>;
  /** tensors to calibrate, in graph order */
  tensors: string[];
}

function plan(folded: FoldedModel, keepFloat: (node: NodeProto) => boolean = () => false): Plan {
  const { nodes } = folded;
  const consumers = consumerCounts(nodes);
  const byInput = new Map<string, number[]>();
  nodes.forEach((n, i) => (n.input ?? []).forEach((t) => byInput.set(t, [...(byInput.get(t) ?? []), i])));
  const absorbs = new Map<number, number>();
  const absorbed = new Set<number>();
  const float = new Set<number>();
  const tensors = ['input'];
  // The last Add is the one whose ReLU output feeds the poolings: it stays float.
  let lastAdd = -1;
  nodes.forEach((n, i) => { if (n.opType === 'Add') lastAdd = i; });
  nodes.forEach((n, i) => {
    if (absorbed.has(i)) return;
    const unit = (n.opType === 'Conv' || n.opType === 'Add') && i < lastAdd;
    if (!unit) {
      float.add(i);
      // A float max pooling (after the float first Conv) feeds integer Convs: they need its range.
      if (n.opType === 'MaxPool') tensors.push(n.output![0]);
      return;
    }
    let out = n.output![0];
    const next = byInput.get(out);
    const relu = consumers.get(out) === 1 && next && nodes[next[0]].opType === 'Relu' ? next[0] : undefined;
    if (relu !== undefined) out = nodes[relu].output![0];
    // Calibrated whether or not the unit stays float: an integer unit after it needs the range.
    tensors.push(out);
    if (keepFloat(n)) {
      float.add(i);
      return;
    }
    if (relu !== undefined) {
      absorbs.set(i, relu);
      absorbed.add(relu);
    }
  });
  return { absorbs, float, tensors };
}

/** The tensors whose ranges a calibration must hold. */
export function calibrationTensors(folded: FoldedModel): string[] {
  return plan(folded).tensors;
}

function floatInitialiser(name: string, t: FloatTensor): TensorProto {
  return onnx.TensorProto.create({ name, dims: t.dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
}

function untypedOutput(name: string) {
  return onnx.ValueInfoProto.create({ name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: onnx.TensorProto.DataType.FLOAT }) }) });
}

function encode(graph: GraphProto, domains: Array<[string, number]>): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'lookalike',
    producerVersion: '1',
    opsetImport: domains.map(([domain, version]) => onnx.OperatorSetIdProto.create({ domain, version })),
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The folded float graph with every tensor to calibrate as an extra output. */
export function calibrationModel(folded: FoldedModel): Uint8Array {
  const { tensors } = plan(folded);
  const outputs = [...(folded.graph.output ?? [])];
  const present = new Set(outputs.map((o) => o.name));
  for (const t of tensors) if (t !== 'input' && !present.has(t)) outputs.push(untypedOutput(t));
  const graph = onnx.GraphProto.create({
    name: folded.graph.name,
    node: folded.nodes,
    initializer: [...(folded.graph.initializer ?? []), ...[...folded.weights].map(([n, t]) => floatInitialiser(n, t))],
    input: folded.graph.input,
    output: outputs,
  });
  return encode(graph, [['', 13]]);
}

/** Running [min, max] of each calibrated tensor over batches. */
export class RangeRecorder {
  readonly ranges: Record<string, [number, number]> = {};
  images = 0;

  add(tensor: string, data: Float32Array): void {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const r = this.ranges[tensor];
    this.ranges[tensor] = r ? [Math.min(r[0], lo), Math.max(r[1], hi)] : [lo, hi];
  }
}

interface QParams { scale: number; zeroPoint: number }

/** uint8 asymmetric parameters covering [min, max] (and 0, which must be exact). */
export function uint8Params([min, max]: [number, number]): QParams {
  const lo = Math.min(0, min), hi = Math.max(0, max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-lo / scale))) };
}

/** The QOperator (uint8 activations, int8 per-channel weights) model for a folded graph and its calibration. */
export function quantiseModel(folded: FoldedModel, calibration: Calibration, options: { weightQmax?: number; keepFloat?: (node: NodeProto) => boolean } = {}): Uint8Array {
  const { nodes, weights } = folded;
  const qmax = options.weightQmax ?? weightQmaxOf(calibration.quantiser);
  const p = plan(folded, options.keepFloat ?? (calibration.quantiser >= 4 ? keepNothingFloat : keepFirstConvFloat));
  const absorbedRelus = new Set(p.absorbs.values());
  const out: NodeProto[] = [];
  const inits: TensorProto[] = [...(folded.graph.initializer ?? [])];
  const quantised = new Map<string, { q: string; scale: string; zp: string; params: QParams }>();
  const floats = new Set<string>(['input', ...weights.keys(), ...inits.map((t) => t.name!)]);
  const usedFloats = new Set<string>();
  const add = (opType: string, input: string[], output: string[], attribute: AttributeProto[] = [], domain = '') => {
    out.push(onnx.NodeProto.create({ opType, input, output, name: output[0], attribute, domain }));
  };
  const scalar = (name: string, value: number, type: 'float' | 'uint8') => {
    const data = type === 'float' ? new Uint8Array(new Float32Array([value]).buffer) : new Uint8Array([value]);
    inits.push(onnx.TensorProto.create({ name, dims: [], dataType: type === 'float' ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.UINT8, rawData: data }));
  };
  const paramsFor = (tensor: string) => {
    const range = calibration.ranges[tensor];
    if (!range) throw new Error(`calibration has no range for ${tensor}: calibrate again`);
    const params = uint8Params(range);
    scalar(`${tensor}:scale`, params.scale, 'float');
    scalar(`${tensor}:zp`, params.zeroPoint, 'uint8');
    return { q: `${tensor}:q`, scale: `${tensor}:scale`, zp: `${tensor}:zp`, params };
  };
  const asQuantised = (tensor: string) => {
    let q = quantised.get(tensor);
    if (!q) {
      q = paramsFor(tensor);
      add('QuantizeLinear', [tensor, q.scale, q.zp], [q.q]);
      quantised.set(tensor, q);
    }
    return q;
  };
  const asFloat = (tensor: string) => {
    if (!floats.has(tensor)) {
      const q = quantised.get(tensor);
      if (!q) throw new Error(`tensor ${tensor} has neither a float nor a quantised form`);
      add('DequantizeLinear', [q.q, q.scale, q.zp], [tensor]);
      floats.add(tensor);
    }
    if (weights.has(tensor)) usedFloats.add(tensor);
    return tensor;
  };
  let pendingPad: { input: string; output: string; pads: number[] } | undefined;

  nodes.forEach((node, i) => {
    const relu = p.absorbs.get(i);
    const result = relu !== undefined ? nodes[relu].output![0] : node.output![0];
    if (absorbedRelus.has(i)) return; // emitted with its unit
    if (node.opType === 'Pad' && nodes[i + 1]?.opType === 'MaxPool' && nodes[i + 1].input![0] === node.output![0]) {
      // Zero padding before a max pooling of ReLU outputs (>= 0) changes no maximum:
      // fold it into the pooling's pads, which then works on uint8 directly.
      const padsInit = inits.find((t) => t.name === node.input![1]);
      const pads = (padsInit?.int64Data ?? []).map(Number);
      pendingPad = { input: node.input![0], output: node.output![0], pads };
      return;
    }
    if (node.opType === 'MaxPool' && pendingPad && node.input![0] === pendingPad.output) {
      const [, , t, l, , , b, r] = pendingPad.pads;
      const attrs = (node.attribute ?? []).filter((a) => a.name !== 'pads');
      attrs.push(onnx.AttributeProto.create({ name: 'pads', type: onnx.AttributeProto.AttributeType.INTS, ints: [t, l, b, r] }));
      const q = quantised.get(pendingPad.input);
      if (q) {
        add('MaxPool', [q.q], [`${node.output![0]}:q`], attrs);
        // Max pooling keeps the input's scale and zero point.
        quantised.set(node.output![0], { ...q, q: `${node.output![0]}:q` });
      } else {
        // A float input (the first Conv stays float) is pooled in float: onnxruntime's
        // uint8 MaxPool took 11% of the int8 model's time, its float one a fraction of it.
        add('MaxPool', [asFloat(pendingPad.input)], [node.output![0]], attrs);
        floats.add(node.output![0]);
      }
      pendingPad = undefined;
      return;
    }
    if (p.float.has(i)) {
      add(node.opType!, (node.input ?? []).map((t) => (t ? asFloat(t) : t)), node.output ?? [], node.attribute ?? [], node.domain ?? '');
      for (const o of node.output ?? []) floats.add(o);
      return;
    }
    if (node.opType === 'Conv') {
      const x = asQuantised(node.input![0]);
      const W = weights.get(node.input![1])!;
      const B = weights.get(node.input![2])!;
      const y = paramsFor(result);
      const cout = W.dims[0];
      const per = W.data.length / cout;
      const wq = new Int8Array(W.data.length);
      const wScale = new Float32Array(cout);
      const bq = new Int32Array(cout);
      for (let o = 0; o < cout; o++) {
        let m = 0;
        for (let j = 0; j < per; j++) m = Math.max(m, Math.abs(W.data[o * per + j]));
        const s = m > 0 ? m / qmax : 1;
        wScale[o] = s;
        for (let j = 0; j < per; j++) wq[o * per + j] = Math.max(-qmax, Math.min(qmax, Math.round(W.data[o * per + j] / s)));
        bq[o] = Math.round(B.data[o] / (x.params.scale * s));
      }
      const base = node.input![1];
      inits.push(
        onnx.TensorProto.create({ name: `${base}:q`, dims: W.dims, dataType: onnx.TensorProto.DataType.INT8, rawData: new Uint8Array(wq.buffer) }),
        onnx.TensorProto.create({ name: `${base}:scale`, dims: [cout], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(wScale.buffer) }),
        onnx.TensorProto.create({ name: `${base}:zp`, dims: [cout], dataType: onnx.TensorProto.DataType.INT8, rawData: new Uint8Array(cout) }),
        onnx.TensorProto.create({ name: `${base}:bias_q`, dims: [cout], dataType: onnx.TensorProto.DataType.INT32, rawData: new Uint8Array(bq.buffer) }),
      );
      add('QLinearConv', [x.q, x.scale, x.zp, `${base}:q`, `${base}:scale`, `${base}:zp`, y.scale, y.zp, `${base}:bias_q`], [y.q], node.attribute ?? []);
      quantised.set(result, y);
      return;
    }
    if (node.opType === 'Add') {
      const a = asQuantised(node.input![0]);
      const b = asQuantised(node.input![1]);
      const y = paramsFor(result);
      add('QLinearAdd', [a.q, a.scale, a.zp, b.q, b.scale, b.zp, y.scale, y.zp], [y.q], [], 'com.microsoft');
      quantised.set(result, y);
      return;
    }
    throw new Error(`node ${node.name} (${node.opType}) has no integer form`);
  });

  // The folded Pad's own initialiser is left behind: drop what no node reads.
  const read = new Set(out.flatMap((n) => n.input ?? []));
  const graph = onnx.GraphProto.create({
    name: `${folded.graph.name}_int8`,
    node: out,
    initializer: [...inits.filter((t) => read.has(t.name!)), ...[...usedFloats].map((n) => floatInitialiser(n, weights.get(n)!))],
    input: folded.graph.input,
    output: folded.graph.output,
  });
  return encode(graph, [['', 13], ['com.microsoft', 1]]);
}
