/**
 * The int8 arithmetic without the model: which kernels this CPU sums exactly (probed on a
 * one-operator graph), which kernels each quantiser version runs on, and precision in the
 * settings fingerprint. The model's own parity is test/integration/quantise-parity.test.ts.
 */
import { describe, it, expect } from 'vitest';
import { checkExact, int8Arithmetic, int8KernelsFor, sessionConfig } from '../../src/model/embedder.js';
import { QUANTISER_VERSION } from '../../src/model/quantise.js';
import { parseCpuinfo, probeInt8Kernels } from '../../src/model/cpu.js';
import { defaultSettings, getBackbone, imageFingerprint, storedSettings } from '../../src/model/registry.js';

const BACKBONE = 'resnet50-imagenet';

describe('int8 kernels on this CPU and on others', () => {
  it('finds whether this CPU sums u8 x s8 products exactly, and onnxruntime\'s u8 x u8 kernels always do', async () => {
    // Either answer is right for some CPU; what must hold everywhere: the exact kernels and
    // 7-bit weights are exact, and the default probe says which kind this CPU is.
    expect(await probeInt8Kernels({ exactKernels: true })).toMatchObject({ exact: true, output: 200 });
    expect((await probeInt8Kernels({ weight: 64 })).exact).toBe(true);
    const probe = await probeInt8Kernels();
    expect([200, 101]).toContain(probe.output);
    console.info(`this CPU's u8 x s8 kernels: ${probe.exact ? 'exact (VNNI or not x86)' : 'saturating int16 pair sums (no VNNI)'}`);
  });

  it('runs quantiser v5 on u8 x s8 kernels everywhere, and older 8-bit graphs on u8 x u8 where the CPU saturates', () => {
    expect(int8KernelsFor(5, true)).toBe('u8s8');
    expect(int8KernelsFor(5, false)).toBe('u8s8');
    expect(int8KernelsFor(4, true)).toBe('u8u8');
    expect(int8KernelsFor(3, true)).toBe('u8u8');
    expect(int8KernelsFor(4, false)).toBe('u8s8');
    expect(sessionConfig({ kernels: 'u8u8' }).session).toMatchObject({ x64quantprecision: '1' });
    expect(sessionConfig({ kernels: 'u8s8' }).session).not.toHaveProperty('x64quantprecision');
  });

  it('names the arithmetic of this machine, checked on the probe, and refuses one that is not exact', async () => {
    const v5 = await int8Arithmetic(QUANTISER_VERSION);
    expect(v5).toMatchObject({ precision: 'int8', quantiser: QUANTISER_VERSION, weightBits: 7, kernels: 'u8s8', exact: true });
    expect(v5.summary).toMatch(/^int8 \(quantiser v5, 7-bit weights\), u8 x s8 kernels/);
    expect((await int8Arithmetic(4)).exact).toBe(true);
    expect(() => checkExact({ ...v5, exact: false })).toThrow(expect.objectContaining({ code: 'INT8_INEXACT' }));
  });

  it('reads the CPU model and the int8 flags out of /proc/cpuinfo', () => {
    const text = 'processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu sse avx avx2 fma avx512f avx512bw avx512_vnni\n';
    expect(parseCpuinfo(text)).toEqual({ model: 'Intel(R) Xeon(R) CPU @ 2.20GHz', flags: ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni'] });
    expect(parseCpuinfo('model name\t: AMD EPYC\nflags\t: fpu avx2 fma\n').flags).toEqual(['avx2', 'fma']);
  });
});

describe('precision in the settings fingerprint', () => {
  it('tells int8 from float32 and keeps the float32 fingerprint older indexes and heads carry', () => {
    const spec = getBackbone(BACKBONE);
    const old = { backbone: spec.name, width: 224, height: 224, resize: 'stretch' as const, pooling: 'max' as const };
    expect(imageFingerprint(old)).toBe('resnet50-imagenet/224x224/stretch');
    expect(imageFingerprint(storedSettings(old))).toBe(imageFingerprint(old));
    expect(storedSettings(old).precision).toBe('fp32');
    expect(imageFingerprint({ ...old, precision: 'int8' })).not.toBe(imageFingerprint(old));
  });

  it('makes int8 at 224x224 the default for a new index (float32 is the choice of --precision fp32)', () => {
    const s = defaultSettings();
    expect([s.precision, s.width, s.height]).toEqual(['int8', 224, 224]);
  });
});
