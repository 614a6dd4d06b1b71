#!/usr/bin/env bash
# GPU call (tenth session): the Triton dV kernel's variants (element-wise S tiles, S as the dot's
# first operand), tests under the GPU machine's Triton 3.6 interpreter too, bench_dv sweep.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/libelas_cutlass_dv.so" || exit 1
gpu_pytest dv_gemm 240 tests/kernels/test_dv_gemm.py
timeout 300 python3 benchmarks/bench_dv.py --csv "$OUT/bench_dv_s80.csv" > "$OUT/bench_dv_s80.log" 2>&1
echo "bench_dv rc=$?"; grep -v "^triton_dv (" "$OUT/bench_dv_s80.log" | tail -n 34; grep "^triton_dv (" "$OUT/bench_dv_s80.log" | cut -c1-150 | head
