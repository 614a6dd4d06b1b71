#!/usr/bin/env bash
# GPU call: build E of the CUTLASS up kernel: its own register-only epilogue (no CUTLASS epilogue
# collective, so no shared memory, named barriers or subtile loop) on a ping-pong kernel whose two
# consumer warpgroups' epilogues may overlap (build D hung: the stock epilogue syncs on one named
# barrier shared by both warpgroups). Kernel tests, bench_cutlass beside build A, then, if the tests
# pass, the 350m training step: dense low rank, ELAS masked with E, ELAS masked with A.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
export ELAS_CUTLASS_LIB=$PWD/.probe/lib_E.so
gpu_pytest cutlass_E 90 tests/kernels/test_cutlass_gpu.py
grep -q " passed" $OUT/t_cutlass_E.log && ! grep -qE "failed|error" $OUT/t_cutlass_E.log; ok=$?
[ $ok -eq 0 ] && gpu_bench_cutlass 16384x4096x256,16384x8192x512,16384x11008x512 E
export ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
gpu_bench_cutlass 16384x4096x256,16384x8192x512,16384x11008x512 A
if [ $ok -eq 0 ]; then
  ELAS_CUTLASS_LIB=$PWD/.probe/lib_E.so gpu_bench_train llama-350m 300 lowrank-attn elas-masked-attn
  mv $OUT/bench_llama-350m $OUT/bench_350m_E; mv $OUT/train_bench_llama-350m.log $OUT/train_bench_350m_E.log
  gpu_bench_train llama-350m 170 elas-masked-attn
fi
