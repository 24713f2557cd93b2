/**
 * Derives the ONNX file of a backbone once, into the cache folder, and reuses it.
 * Concurrent processes are safe: each writes a temporary file and renames it.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { cacheDir } from '../paths.js';
import { layersModelToOnnx, readLayersModel } from './convert.js';
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
  const dir = path.join(cacheDir(), 'models');
  const onnxPath = path.join(dir, `${spec.name}-v${CONVERTER_VERSION}-${key}.onnx`);
  const weightsId = `${spec.name}@${key}`;
  if (existsSync(onnxPath)) return { onnxPath, weightsId };
  log(`converting ${spec.name} to ONNX (once) -> ${onnxPath}`);
  const layers = await readLayersModel(modelJson);
  const bytes = layersModelToOnnx(layers);
  await mkdir(dir, { recursive: true });
  const tmp = `${onnxPath}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, onnxPath);
  return { onnxPath, weightsId };
}
