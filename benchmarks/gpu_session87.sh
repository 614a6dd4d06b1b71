#!/usr/bin/env bash
# GPU call (tenth session): the Triton dV with S tiles computed as [K, groups, 4] and reshaped
# (no joins: Nsight Compute, gpu_session86, found 19-way bank conflicts on 74% of shared loads),
# its GPU test at every config, bench_dv at both FFN shapes.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_pytest dv_gemm_gpu 200 tests/kernels/test_dv_gemm.py -m gpu
timeout 250 python3 benchmarks/bench_dv.py --csv "$OUT/bench_dv_s87.csv" > "$OUT/bench_dv_s87.log" 2>&1
echo "bench_dv rc=$?"; grep -v "^triton_dv (" "$OUT/bench_dv_s87.log" | tail -n 28 | cut -c1-110
