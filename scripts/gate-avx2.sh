#!/usr/bin/env bash
# The data suite's quality gate as a CPU without VNNI computes it: qemu-x86_64 -cpu Haswell
# (AVX2 + FMA, no VNNI, no AVX-512) runs node, and onnxruntime picks its kernels by CPUID,
# so the int8 model takes the saturating uint8 x int8 path of most rented x86 servers.
#
#   scripts/gate-avx2.sh [SUBSET]     # default 150 dev items; needs qemu-user and ../shared
#
# Emulated inference takes seconds per image, so the subset is small and the robustness test
# is left out. The float32 index and the int8 calibration (float32 arithmetic, which does not
# depend on VNNI) are computed natively first and reused; every vector the default arithmetic
# computes (the index and the fixed photos) is computed in the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOKALIKE_DEV_SUBSET="${1:-150}"
command -v qemu-x86_64 >/dev/null || { echo "gate-avx2: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 2; }
gate=(node_modules/vitest/vitest.mjs run --project data test/data/quality-gate.data.test.ts -t 'precision@5|fixed photos' --hookTimeout 7200000 --testTimeout 3600000)
echo "native run (builds the float32 index and the calibration; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
node "${gate[@]}"
# The default index again, this time embedded in the emulator.
rm -rf "${TMPDIR:-/tmp}"/lookalike-dev-index-"$LOOKALIKE_DEV_SUBSET"-q*
echo "emulated Haswell run:"
qemu-x86_64 -cpu Haswell "$(command -v node)" "${gate[@]}" --pool threads 2> >(grep -v "TCG doesn't support" >&2)
