/**
 * What the CPU does to int8 arithmetic. onnxruntime's x86 kernels multiply uint8
 * activations by int8 weights; CPUs with VNNI (VPDPBUSD) sum the products in 32 bits,
 * others (AVX2, AVX-512 without VNNI) first add each pair of products into int16 with
 * saturation (VPMADDUBSW). A quantiser whose pair sums can leave int16 then gives other
 * vectors on those CPUs: the int8 v4 graph's cosine to the same photo on a VNNI CPU fell to
 * 0.65 under an emulated Haswell (qemu-x86_64 -cpu Haswell, the project's AVX2 check).
 *
 * Two answers, both from here: the CPU's model and flags, named wherever a figure or an
 * arithmetic is reported (info, /api/health, bench); and a probe that asks the kernels
 * themselves rather than guessing from the flags: a tiny QLinearConv whose exact sum needs
 * 32 bits. The probe is what decides, so an emulator, a new CPU kind or a new onnxruntime
 * that picks other kernels is judged by what it computes.
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** The flags that decide int8 speed and arithmetic on x86 (as /proc/cpuinfo spells them). */
export const INT8_FLAGS = ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_int8'] as const;

export interface CpuDescription {
  /** "AMD EPYC 7B13", "Intel(R) Xeon(R) CPU @ 2.20GHz", ... */
  model: string;
  /** process.arch: x64, arm64, ... */
  arch: string;
  cores: number;
  /** Which of INT8_FLAGS the CPU reports, in that order; empty where the OS does not say. */
  flags: string[];
  /** true or false where the flags are known (Linux), undefined elsewhere. */
  vnni: boolean | undefined;
}

/** Reads model and flags out of /proc/cpuinfo text (the first processor's). */
export function parseCpuinfo(text: string): { model?: string; flags?: string[] } {
  const field = (name: string) => text.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim();
  const flags = field('flags')?.split(/\s+/);
  return { model: field('model name'), flags: flags ? INT8_FLAGS.filter((f) => flags.includes(f)) : undefined };
}

let described: CpuDescription | undefined;

/** This machine's CPU, read once. */
export function describeCpu(): CpuDescription {
  if (described) return described;
  let parsed: ReturnType<typeof parseCpuinfo> = {};
  try {
    if (process.platform === 'linux') parsed = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // No /proc (a sandbox): the model from os.cpus() below, flags unknown.
  }
  const flags = parsed.flags ?? [];
  described = {
    model: parsed.model ?? os.cpus()[0]?.model?.trim() ?? 'unknown CPU',
    arch: process.arch,
    cores: os.availableParallelism(),
    flags,
    vnni: parsed.flags ? flags.includes('avx512_vnni') || flags.includes('avx_vnni') : undefined,
  };
  return described;
}

/** One line for reports: "AMD EPYC 7B13 (x64, 2 cores; avx2 fma avx512_vnni; VNNI: yes)". */
export function cpuLine(cpu: CpuDescription = describeCpu()): string {
  const vnni = cpu.vnni === undefined ? 'unknown' : cpu.vnni ? 'yes' : 'no';
  return `${cpu.model} (${cpu.arch}, ${cpu.cores} cores; ${cpu.flags.length ? cpu.flags.join(' ') : 'flags unknown'}; VNNI: ${vnni})`;
}

/**
 * The probe: activations of 255 times weights of 127 over 64 input channels. The exact sum
 * is 64 x 255 x 127 = 2,072,640; saturated pairs give 32 x 32,767 = 1,048,544. The output
 * scale maps the exact sum to 200, so the answer is one byte: 200 exact, ~101 saturated.
 */
const PROBE_CHANNELS = 64;
const PROBE_EXACT_OUTPUT = 200;

function probeModel(weight: number): Uint8Array {
  const T = onnx.TensorProto.DataType;
  const scalar = (name: string, dataType: number, bytes: Uint8Array, dims: number[] = []) => onnx.TensorProto.create({ name, dims, dataType, rawData: bytes });
  const f32 = (v: number) => new Uint8Array(new Float32Array([v]).buffer);
  const outputs = 4;
  const yScale = (PROBE_CHANNELS * 255 * 127) / PROBE_EXACT_OUTPUT;
  const graph = onnx.GraphProto.create({
    name: 'int8_probe',
    node: [onnx.NodeProto.create({ opType: 'QLinearConv', input: ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz'], output: ['y'], name: 'conv' })],
    initializer: [
      scalar('xs', T.FLOAT, f32(1)),
      scalar('xz', T.UINT8, new Uint8Array([0])),
      scalar('w', T.INT8, new Uint8Array(new Int8Array(outputs * PROBE_CHANNELS).fill(weight).buffer), [outputs, PROBE_CHANNELS, 1, 1]),
      scalar('ws', T.FLOAT, new Uint8Array(new Float32Array(outputs).fill(1).buffer), [outputs]),
      scalar('wz', T.INT8, new Uint8Array(outputs), [outputs]),
      scalar('ys', T.FLOAT, f32(yScale)),
      scalar('yz', T.UINT8, new Uint8Array([0])),
    ],
    input: [onnx.ValueInfoProto.create({ name: 'x', type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: T.UINT8, shape: onnx.TensorShapeProto.create({ dim: [1, PROBE_CHANNELS, 4, 4].map((dimValue) => onnx.TensorShapeProto.Dimension.create({ dimValue })) }) }) }) })],
    output: [onnx.ValueInfoProto.create({ name: 'y', type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: T.UINT8 }) }) })],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, producerName: 'lookalike', opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })], graph });
  return onnx.ModelProto.encode(model).finish();
}

/** What the probe found: whether int8 pair sums stay exact with the given session options. */
export interface KernelProbe {
  /** true: every product was summed exactly (VNNI, ARM, or onnxruntime's u8 x u8 kernels) */
  exact: boolean;
  /** the probe's output byte (PROBE_EXACT_OUTPUT when exact) */
  output: number;
}

/**
 * Runs the probe through onnxruntime with the same graph optimisation as the embedder, with
 * or without `session.x64quantprecision` (onnxruntime's u8 x u8 kernels: exact, slower).
 */
export async function probeInt8Kernels(options: { exactKernels?: boolean; weight?: number } = {}): Promise<KernelProbe> {
  const session = await ort.InferenceSession.create(probeModel(options.weight ?? 127), {
    intraOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    ...(options.exactKernels ? { extra: { session: { x64quantprecision: '1' } } } : {}),
  });
  try {
    const x = new ort.Tensor('uint8', new Uint8Array(PROBE_CHANNELS * 16).fill(255), [1, PROBE_CHANNELS, 4, 4]);
    const y = (await session.run({ x })).y.data as Uint8Array;
    const expected = Math.round((PROBE_EXACT_OUTPUT * (options.weight ?? 127)) / 127);
    return { exact: y.every((v) => v === expected), output: y[0] };
  } finally {
    await session.release();
  }
}

let defaultProbe: Promise<KernelProbe> | undefined;

/** The probe with default options, run once per process. */
export function int8KernelsSaturate(): Promise<boolean> {
  defaultProbe ??= probeInt8Kernels();
  return defaultProbe.then((p) => !p.exact);
}
