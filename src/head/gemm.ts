/**
 * Matrix products for training and batch projection, handed to onnxruntime's GEMM (MLAS,
 * all cores): one Gemm node per transpose combination, built once. Measured on the 2-core
 * dev machine, 512 x 528 x 768: onnxruntime 30 GFLOP/s, the best plain-JS kernel
 * (math/linalg.ts gemmNT) 1.7 GFLOP/s; the head's training and the projection of a whole
 * catalog are a few dozen such products per second, so this is what makes them take
 * seconds instead of minutes.
 *
 * Single vectors (a query photo) do not come here: `matVec` below is plain JS, synchronous
 * and well under a millisecond per layer.
 */
import * as ort from 'onnxruntime-node';
import { dotAt } from '../math/linalg.js';
import { cpuSession, intAttribute, valueInfo } from '../model/onnx-graph.js';
import onnxProto from 'onnx-proto';

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function gemmSession(transA: boolean, transB: boolean, bias: boolean): Promise<ort.InferenceSession> {
  const key = `${+transA}${+transB}${+bias}`;
  let session = sessions.get(key);
  if (!session) {
    const { onnx } = onnxProto;
    const inputs = [valueInfo('a', ['a0', 'a1']), valueInfo('b', ['b0', 'b1'])];
    if (bias) inputs.push(valueInfo('c', ['c0']));
    session = cpuSession(onnx.GraphProto.create({
      name: 'gemm',
      node: [onnx.NodeProto.create({ opType: 'Gemm', input: bias ? ['a', 'b', 'c'] : ['a', 'b'], output: ['y'], attribute: [intAttribute('transA', +transA), intAttribute('transB', +transB)] })],
      input: inputs,
      output: [valueInfo('y', ['m', 'n'])],
    }));
    sessions.set(key, session);
  }
  return session;
}

/** A row-major matrix view. */
export interface Mat { data: Float32Array; rows: number; cols: number }

export function mat(data: Float32Array, rows: number, cols: number): Mat {
  if (data.length < rows * cols) throw new Error(`matrix buffer holds ${data.length} values, needs ${rows} x ${cols}`);
  return { data: data.length === rows * cols ? data : data.subarray(0, rows * cols), rows, cols };
}

/**
 * op(A) · op(B) (+ bias per column), where op transposes when asked. Returns a new
 * rows x cols matrix.
 */
export async function gemm(a: Mat, b: Mat, options: { transA?: boolean; transB?: boolean; bias?: Float32Array } = {}): Promise<Mat> {
  const transA = options.transA ?? false, transB = options.transB ?? false;
  const m = transA ? a.cols : a.rows;
  const k = transA ? a.rows : a.cols;
  const kb = transB ? b.cols : b.rows;
  const n = transB ? b.rows : b.cols;
  if (k !== kb) throw new Error(`gemm: inner dimensions differ (${k} vs ${kb})`);
  if (m === 0 || n === 0) return { data: new Float32Array(m * n), rows: m, cols: n };
  if (k === 0) {
    const out = new Float32Array(m * n);
    if (options.bias) for (let i = 0; i < m; i++) out.set(options.bias, i * n);
    return { data: out, rows: m, cols: n };
  }
  const session = await gemmSession(transA, transB, !!options.bias);
  const feeds: Record<string, ort.Tensor> = {
    a: new ort.Tensor('float32', a.data, [a.rows, a.cols]),
    b: new ort.Tensor('float32', b.data, [b.rows, b.cols]),
  };
  if (options.bias) feeds.c = new ort.Tensor('float32', options.bias, [n]);
  const out = await session.run(feeds);
  return { data: out.y.data as Float32Array, rows: m, cols: n };
}

/** y = W x + b for one vector (W: rows x cols, row-major). Plain JS: a query at a time. */
export function matVec(w: Float32Array, rows: number, cols: number, x: Float32Array, bias?: Float32Array, out = new Float32Array(rows)): Float32Array {
  for (let r = 0; r < rows; r++) out[r] = dotAt(w, r * cols, x, cols) + (bias ? bias[r] : 0);
  return out;
}
