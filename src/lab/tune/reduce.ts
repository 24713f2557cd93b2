/**
 * Smaller embeddings for the size sweep: PCA fitted on the catalog (math/pca.ts), then
 * every row projected and L2-normalised again so that cosine search works unchanged.
 *
 * The projection is a 31,000 x 2048 by 2048 x 1024 product: done in plain JavaScript it
 * takes over a minute, so it goes through onnxruntime's GEMM (the same engine that runs
 * the backbone and the batched search), in blocks of rows.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { fitPca, type Pca } from '../../math/pca.js';
import { normaliseRows } from '../../search/kernel.js';

let session: Promise<ort.InferenceSession> | undefined;

/** out = a · bᵀ for float32 a (m x d) and b (k x d). */
function productSession(): Promise<ort.InferenceSession> {
  if (!session) {
    const { onnx } = onnxProto;
    const dim = (p: string) => onnx.TensorShapeProto.Dimension.create({ dimParam: p });
    const F = onnx.TensorProto.DataType.FLOAT;
    const info = (name: string, dims: string[]) => onnx.ValueInfoProto.create({
      name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: F, shape: onnx.TensorShapeProto.create({ dim: dims.map(dim) }) }) }),
    });
    const graph = onnx.GraphProto.create({
      name: 'project',
      node: [onnx.NodeProto.create({ opType: 'Gemm', input: ['a', 'b'], output: ['out'], attribute: [onnx.AttributeProto.create({ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 })] })],
      input: [info('a', ['m', 'd']), info('b', ['k', 'd'])],
      output: [info('out', ['m', 'k'])],
    });
    const model = onnx.ModelProto.create({ irVersion: 8, producerName: 'lookalike', opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })], graph });
    session = ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
      intraOpNumThreads: Math.max(1, os.availableParallelism()),
      executionProviders: ['cpu'],
    });
  }
  return session;
}

/**
 * (x_i - mean) · components[0..k)ᵀ for every row, then L2-normalised: n x k. Uses the
 * leading `k` components of `pca` (they are sorted by explained variance, so the first
 * k of a larger fit are the k-component PCA).
 */
export async function projectNormalised(pca: Pca, data: Float32Array, n: number, k = pca.k): Promise<Float32Array> {
  const d = pca.d;
  if (k > pca.k) throw new Error(`the PCA has ${pca.k} components, ${k} asked for`);
  const s = await productSession();
  const comps = new ort.Tensor('float32', pca.components.subarray(0, k * d), [k, d]);
  const out = new Float32Array(n * k);
  const block = 2048;
  // Centring first (not subtracting mean · component afterwards) avoids cancellation:
  // post-ReLU CNN features have a large mean.
  const centred = new Float32Array(block * d);
  for (let start = 0; start < n; start += block) {
    const rows = Math.min(block, n - start);
    for (let i = 0; i < rows; i++) {
      const so = (start + i) * d, bo = i * d;
      for (let j = 0; j < d; j++) centred[bo + j] = data[so + j] - pca.mean[j];
    }
    const res = await s.run({ a: new ort.Tensor('float32', centred.subarray(0, rows * d), [rows, d]), b: comps });
    out.set(res.out.data as Float32Array, start * k);
  }
  return normaliseRows(out, k);
}

/** One PCA fit with the most components needed; smaller sizes reuse its leading components. */
export function fitForSizes(data: Float32Array, n: number, d: number, sizes: number[], seed = 0, sampleRows = 8000): Pca | undefined {
  const needed = Math.max(0, ...sizes.filter((s) => s < d));
  if (!needed) return undefined;
  // One power iteration: the sweep needs the subspace that carries most of the variance,
  // not converged trailing components, and each extra iteration costs as much as the fit.
  return fitPca(data, n, d, Math.min(needed, n - 1), { seed, sampleRows: n > sampleRows ? sampleRows : undefined, powerIterations: 1 });
}
