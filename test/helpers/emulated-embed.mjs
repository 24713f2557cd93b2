// Embeds prepared pixels with one ONNX model and writes the max-pooled features: run by
// test/integration/quantise-parity.test.ts natively and under qemu-x86_64 with a CPU model that
// has no VNNI, so the two runs differ only in the CPU onnxruntime sees. Plain JavaScript:
// under the emulator, every extra instruction (a TypeScript loader) costs seconds.
// usage: node emulated-embed.mjs MODEL PIXELS N HEIGHT WIDTH SESSION_CONFIG_JSON OUT
import { readFileSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import * as ort from 'onnxruntime-node';

const [model, pixelsFile, n, height, width, config, out] = process.argv.slice(2);
const bytes = readFileSync(pixelsFile);
const pixels = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const session = await ort.InferenceSession.create(model, {
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionProviders: ['cpu'],
  extra: JSON.parse(config),
});
const input = new ort.Tensor('float32', pixels, [Number(n), 3, Number(height), Number(width)]);
const result = await session.run({ input }, ['features_max']);
writeFileSync(out, result.features_max.data);
