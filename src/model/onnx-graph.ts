/**
 * The few pieces every ONNX graph Lookalike builds needs (the backbone conversion, the
 * search kernel's GEMM + TopK, the head's GEMM): typed value infos, attributes, and a
 * CPU session on all cores for a finished graph.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;

/** A tensor's name, element type and shape; strings are symbolic (dynamic) dimensions. */
export function valueInfo(name: string, dims: Array<number | string>, elemType: number = FLOAT) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) => (typeof d === 'number'
            ? onnx.TensorShapeProto.Dimension.create({ dimValue: d })
            : onnx.TensorShapeProto.Dimension.create({ dimParam: d }))),
        }),
      }),
    }),
  });
}

export function intAttribute(name: string, i: number) {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
}

/** Wraps a graph into an opset-13 model. */
export function modelBytes(graph: ReturnType<typeof onnx.GraphProto.create>): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'lookalike',
    producerVersion: '1',
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** A CPU session for a small in-memory graph, using every core. */
export function cpuSession(graph: ReturnType<typeof onnx.GraphProto.create>): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(modelBytes(graph), {
    intraOpNumThreads: Math.max(1, os.availableParallelism()),
    executionProviders: ['cpu'],
  });
}
