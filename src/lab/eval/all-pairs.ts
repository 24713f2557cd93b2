/**
 * Leave-one-out top-k over a whole catalog at half the cost of a plain all-vs-all search.
 *
 * The score matrix S = M Mᵀ of a leave-one-out evaluation is symmetric, so only its upper
 * triangle needs computing. Rows go through in blocks; block b (rows s..s+B) is multiplied
 * with rows s..n only, and that one block product serves twice:
 *  - along its rows: the block's rows against every later item (TopK along axis 1);
 *  - along its columns: every later item against the block's rows (TopK along axis 0 of
 *    the part right of the diagonal block), which is what those items' own blocks no
 *    longer compute.
 * Each item's running top k merges its candidates from the blocks before it with its own
 * block's. The GEMM and both TopKs run in onnxruntime (as batchTopK in search/kernel.ts);
 * the merge is a few million inserts into k-long lists.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import type { BatchHits } from '../../search/kernel.js';

let sessions: Promise<{ both: ort.InferenceSession; rowsOnly: ort.InferenceSession }> | undefined;

function buildSessions() {
  if (!sessions) {
    const { onnx } = onnxProto;
    const dim = (p: string) => onnx.TensorShapeProto.Dimension.create({ dimParam: p });
    const F = onnx.TensorProto.DataType.FLOAT, I64 = onnx.TensorProto.DataType.INT64;
    const info = (name: string, elemType: number, dims: string[]) => onnx.ValueInfoProto.create({
      name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType, shape: onnx.TensorShapeProto.create({ dim: dims.map(dim) }) }) }),
    });
    const int = (name: string, i: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
    const node = (opType: string, input: string[], output: string[], attribute: ReturnType<typeof int>[] = []) => onnx.NodeProto.create({ opType, input, output, attribute });
    const model = (withColumns: boolean) => {
      const nodes = [
        node('Gemm', ['block', 'rest'], ['scores'], [int('transB', 1)]),
        node('TopK', ['scores', 'kRows'], ['rowValues', 'rowIndices'], [int('axis', 1)]),
      ];
      const inputs = [info('block', F, ['b', 'd']), info('rest', F, ['m', 'd']), info('kRows', I64, ['one'])];
      const outputs = [info('rowValues', F, ['b', 'kr']), info('rowIndices', I64, ['b', 'kr'])];
      if (withColumns) {
        // Columns right of the diagonal block; transposed so that TopK runs along the
        // contiguous axis.
        nodes.push(
          node('Slice', ['scores', 'starts', 'ends', 'axes'], ['right']),
          node('Transpose', ['right'], ['rightT'], [onnx.AttributeProto.create({ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 0] })]),
          node('TopK', ['rightT', 'kCols'], ['colValues', 'colIndices'], [int('axis', 1)]),
        );
        inputs.push(info('starts', I64, ['one']), info('ends', I64, ['one']), info('axes', I64, ['one']), info('kCols', I64, ['one']));
        outputs.push(info('colValues', F, ['c', 'kc']), info('colIndices', I64, ['c', 'kc']));
      }
      const graph = onnx.GraphProto.create({ name: 'loo_topk', node: nodes, input: inputs, output: outputs });
      const proto = onnx.ModelProto.create({ irVersion: 8, producerName: 'lookalike', opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })], graph });
      return ort.InferenceSession.create(onnx.ModelProto.encode(proto).finish(), {
        intraOpNumThreads: Math.max(1, os.availableParallelism()),
        executionProviders: ['cpu'],
      });
    };
    sessions = Promise.all([model(true), model(false)]).then(([both, rowsOnly]) => ({ both, rowsOnly }));
  }
  return sessions;
}

const i64 = (v: number) => new ort.Tensor('int64', BigInt64Array.from([BigInt(v)]), [1]);

/**
 * For every row of `matrix` (n x dim, rows normalised), its k best other rows, best first:
 * the same answer as batchTopK(matrix, dim, matrix, n, k, { excludeSelf: identity }).
 */
export async function leaveOneOutTopK(
  matrix: Float32Array, dim: number, k: number,
  options: { blockSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<BatchHits> {
  const n = matrix.length / dim;
  const kk = Math.max(0, Math.min(k, n - 1));
  const rows = new Int32Array(n * kk).fill(-1);
  const scores = new Float32Array(n * kk).fill(-Infinity);
  if (!kk) return { k: kk, rows, scores: scores.fill(Number.NaN) };
  const { both, rowsOnly } = await buildSessions();
  // About 64 MB of scores per block whatever the catalog size (as batchTopK).
  const block = options.blockSize ?? Math.max(64, Math.min(1024, Math.floor(16_000_000 / n)));

  /** Inserts (score, row) into q's k-long list, kept sorted best first; equal scores keep arrival order. */
  const insert = (q: number, score: number, row: number) => {
    const base = q * kk;
    if (!(score > scores[base + kk - 1])) return;
    let j = kk - 1;
    while (j > 0 && scores[base + j - 1] < score) {
      scores[base + j] = scores[base + j - 1];
      rows[base + j] = rows[base + j - 1];
      j--;
    }
    scores[base + j] = score;
    rows[base + j] = row;
  };

  for (let s = 0; s < n; s += block) {
    const b = Math.min(block, n - s);
    const m = n - s; // columns: rows s..n
    const right = m - b; // columns after the diagonal block
    const kRows = Math.min(kk + 1, m); // +1: the row itself is among them
    const feeds: Record<string, ort.Tensor> = {
      block: new ort.Tensor('float32', matrix.subarray(s * dim, (s + b) * dim), [b, dim]),
      rest: new ort.Tensor('float32', matrix.subarray(s * dim), [m, dim]),
      kRows: i64(kRows),
    };
    const kCols = Math.min(kk, b);
    let out: ort.InferenceSession.OnnxValueMapType;
    if (right > 0) {
      out = await both.run({ ...feeds, starts: i64(b), ends: i64(m), axes: i64(1), kCols: i64(kCols) });
    } else {
      out = await rowsOnly.run(feeds);
    }
    // Later items: their candidates among this block's rows (rows before theirs).
    if (right > 0) {
      const values = out.colValues.data as Float32Array;
      const indices = out.colIndices.data as BigInt64Array;
      for (let c = 0; c < right; c++) {
        const q = s + b + c;
        for (let j = 0; j < kCols; j++) insert(q, values[c * kCols + j], s + Number(indices[c * kCols + j]));
      }
    }
    // This block's rows: candidates from here on (the blocks before have already fed them).
    const values = out.rowValues.data as Float32Array;
    const indices = out.rowIndices.data as BigInt64Array;
    for (let i = 0; i < b; i++) {
      const q = s + i;
      for (let j = 0; j < kRows; j++) {
        const row = s + Number(indices[i * kRows + j]);
        if (row !== q) insert(q, values[i * kRows + j], row);
      }
    }
    options.onProgress?.(s + b, n);
  }
  for (let i = 0; i < rows.length; i++) if (rows[i] < 0) scores[i] = Number.NaN;
  return { k: kk, rows, scores };
}
