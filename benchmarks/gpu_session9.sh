#!/usr/bin/env bash
# GPU call: the persistent TMA GEMMs with the 2:4 epilogue: GPU tests, then the kernel benchmark
# (config sweep at each shape) against cuBLAS + the separate kernels.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
t0=$(date +%s)
timeout 200 python3 -m pytest -x --tb=short -q -p no:cacheprovider tests/kernels/test_tma_gemm_gpu.py \
  "tests/test_fused_ffn_gpu.py::test_fused_op_matches_float64" > $OUT/t_tma.log 2>&1
echo "[tests rc=$? $(( $(date +%s) - t0 ))s]"; tail -n 15 $OUT/t_tma.log
t0=$(date +%s)
timeout 330 python3 benchmarks/bench_tma_gemm.py --sweep-budget 40 \
  --csv $OUT/bench_tma_gemm_h100.csv > $OUT/bench_tma_gemm.log 2>&1
echo "[bench rc=$? $(( $(date +%s) - t0 ))s]"
grep -v "^  " $OUT/bench_tma_gemm.log | tail -n 12
grep "^  " $OUT/bench_tma_gemm.log | sort -k3 | head -0
