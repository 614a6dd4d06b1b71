#!/usr/bin/env bash
# GPU call (tenth session): library C = select24 with 16-bit value fields in place + fmaxf relu in the
# up kernel; the grad kernel's S store a compile-time choice (StoreS) instead of a run-time test.
# Kernel tests, bit-identity and kernel timings against the measured library, the FFN op's float64
# tests (both ELAS_DV_KERNEL paths), then 350m dense low rank vs ELAS masked with C (CUDA graphs).
# Everything under $OUT is packed into one archive at the end (the call returns few files).
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_s82C.so" || exit 1
gpu_cutlass_tests C
gpu_compare_libs "$PWD/.probe/libelas_cutlass.so" "$PWD/.probe/lib_s82C.so"
for round in 1 2; do
  for v in libelas_cutlass lib_s82C; do
    ELAS_CUTLASS_LIB=$PWD/.probe/$v.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 ${v}_s82_$round | tail -n 2
  done
done
gpu_pytest ffn_float64 200 tests/test_fused_ffn_gpu.py -k matches_float64
gpu_bench_train llama-350m 330 lowrank-attn elas-masked-attn
cd "$OUT" && tar czf s82.tgz --remove-files -- * && ls
