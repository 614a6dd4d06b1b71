#!/usr/bin/env bash
# GPU call (tenth session): the grad kernel without the dense-S store, and a split-K Triton
# dV = g^T S that reads the compressed S (kernels/triton_dv_gemm.py): kernel tests, then
# benchmarks/bench_dv.py at the 350m and 1b FFN shapes (every config of the sweep).
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/libelas_cutlass_dv.so" || exit 1
gpu_cutlass_tests dv
gpu_pytest dv_gemm 240 tests/kernels/test_dv_gemm.py
timeout 240 python3 benchmarks/bench_dv.py --csv "$OUT/bench_dv_s79.csv" > "$OUT/bench_dv_s79.log" 2>&1
echo "bench_dv rc=$?"; tail -n 30 "$OUT/bench_dv_s79.log"
