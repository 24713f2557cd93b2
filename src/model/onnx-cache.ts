/**
 * Derives the ONNX files of a backbone once, into the cache folder, and reuses them: the
 * float32 conversion of the weights, and int8 models quantised from it for a calibration.
 * Concurrent processes are safe: each writes a temporary file and renames it.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { cacheDir } from '../paths.js';
import { LookalikeError } from '../errors.js';
import { layersModelToOnnx, readLayersModel } from './convert.js';
import { calibrationId, foldModel, quantiseModel, QUANTISERS_BUILT, type Calibration } from './quantise.js';
import { getBackbone } from './registry.js';

/** Bump when the converter's output changes, so stale cache files are not reused. */
const CONVERTER_VERSION = 2;

export interface ConvertedModel { onnxPath: string; weightsId: string }

export async function ensureOnnxModel(backboneName: string, log: (msg: string) => void = () => {}): Promise<ConvertedModel> {
  const spec = getBackbone(backboneName);
  const modelJson = spec.modelJsonPath();
  // Key the cache on the model description alone (cheap), not on all 98 MB of weights;
  // the weights' full hash is recorded inside the cache entry's name on conversion.
  const key = createHash('sha256').update(await readFile(modelJson)).digest('hex').slice(0, 12);
  const onnxPath = path.join(modelsDir(), `${spec.name}-v${CONVERTER_VERSION}-${key}.onnx`);
  const weightsId = `${spec.name}@${key}`;
  if (existsSync(onnxPath)) return { onnxPath, weightsId };
  log(`converting ${spec.name} to ONNX (once) -> ${onnxPath}`);
  const layers = await readLayersModel(modelJson);
  await writeAtomically(onnxPath, layersModelToOnnx(layers));
  return { onnxPath, weightsId };
}

/**
 * The int8 model for a calibration (an index's manifest holds it), quantised from the
 * float32 conversion once and cached under the calibration's id: every process that opens
 * the index (queries, the server, workers) runs exactly the same model.
 */
export async function ensureQuantisedModel(backboneName: string, calibration: Calibration, log: (msg: string) => void = () => {}): Promise<ConvertedModel> {
  if (!QUANTISERS_BUILT.includes(calibration.quantiser)) {
    // Quantised by a version whose graph this one cannot build: it would embed queries
    // differently from the stored vectors.
    throw new LookalikeError('MODEL_MISMATCH', { index: 'this index', indexed: `int8 quantiser v${calibration.quantiser}`, requested: `int8 quantiser v${QUANTISERS_BUILT.join(' or v')}` });
  }
  const fp32 = await ensureOnnxModel(backboneName, log);
  // The calibration's own version names the graph (an older index keeps its graph).
  const onnxPath = fp32.onnxPath.replace(/\.onnx$/, `-int8q${calibration.quantiser}-${calibrationId(calibration)}.onnx`);
  if (existsSync(onnxPath)) return { onnxPath, weightsId: fp32.weightsId };
  log(`quantising ${backboneName} to int8 (once per calibration) -> ${onnxPath}`);
  await writeAtomically(onnxPath, quantiseModel(foldModel(await readFile(fp32.onnxPath)), calibration));
  return { onnxPath, weightsId: fp32.weightsId };
}

function modelsDir(): string {
  return path.join(cacheDir(), 'models');
}

async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}
