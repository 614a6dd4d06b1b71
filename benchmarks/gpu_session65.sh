#!/usr/bin/env bash
# GPU call: build D of the CUTLASS up kernel: CUTLASS's ping-pong kernel with the epilogue turn-taking
# removed (the two consumer warpgroups still take turns for the MMAs; the up kernel's epilogue
# writes straight to global memory and shares no shared memory, so its epilogues may overlap):
# kernel tests, bench_cutlass beside build A (the library's), then, if the tests pass, the 350m
# training step (dense low rank, ELAS masked with D, ELAS masked with A) under CUDA graphs.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
export ELAS_CUTLASS_LIB=$PWD/.probe/lib_D.so
gpu_cutlass_tests D; ok=$?
grep -q " passed" $OUT/t_cutlass_D.log && ! grep -q "failed" $OUT/t_cutlass_D.log; ok=$?
gpu_bench_cutlass 16384x4096x256,16384x8192x512 D
export ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
gpu_bench_cutlass 16384x4096x256,16384x8192x512 A
if [ $ok -eq 0 ]; then
  ELAS_CUTLASS_LIB=$PWD/.probe/lib_D.so gpu_bench_train llama-350m 300 lowrank-attn elas-masked-attn
  mv $OUT/bench_llama-350m $OUT/bench_350m_D; mv $OUT/train_bench_llama-350m.log $OUT/train_bench_350m_D.log
  gpu_bench_train llama-350m 200 elas-masked-attn
fi
