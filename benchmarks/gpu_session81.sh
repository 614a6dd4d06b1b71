#!/usr/bin/env bash
# GPU call (tenth session): two library builds against the measured one (libelas_cutlass.so):
# A = select24 with 16-bit value fields in place (~20% fewer ranking instructions in the up kernel),
# B = A + streaming cache hints on the grad kernel's loads of the compressed S and its dy / S stores.
# Kernel tests with both, bit-identity against the measured library, kernel timings of all three.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_s81A.so" || exit 1
gpu_cutlass_tests A
ELAS_CUTLASS_LIB=$PWD/.probe/lib_s81B.so gpu_cutlass_tests B
gpu_compare_libs "$PWD/.probe/libelas_cutlass.so" "$PWD/.probe/lib_s81A.so" "$PWD/.probe/lib_s81B.so"
for round in 1 2; do
  for v in libelas_cutlass lib_s81A lib_s81B; do
    ELAS_CUTLASS_LIB=$PWD/.probe/$v.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 ${v}_s81_$round | tail -n 2
  done
done
