#!/usr/bin/env bash
# GPU call: the library as committed (lib_new4b: grad kernel with the register-only epilogue, loads
# before the MMA, cluster 1 x 2): its kernel tests; kernel timings against lib_new5 (the up kernel
# on a 1 x 2 cluster too); then 350m dense low rank vs ELAS masked (every linear low rank, CUDA graphs).
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_new4b.so" || exit 1
gpu_cutlass_tests new4b
for v in new4b new5; do
  ELAS_CUTLASS_LIB=$PWD/.probe/lib_$v.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 ${v}_s75 | tail -n 2
done
gpu_bench_train llama-350m 330 lowrank-attn elas-masked-attn
