#!/usr/bin/env bash
# GPU call: the persistent TMA GEMMs with the 2:4 epilogue: GPU tests, the kernel benchmark
# (config sweep at each shape) against cuBLAS + the separate kernels, then the FFN block with them.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
t0=$(date +%s)
timeout 200 python3 -m pytest -x --tb=short -q -p no:cacheprovider tests/kernels/test_tma_gemm_gpu.py \
  "tests/test_fused_ffn_gpu.py::test_fused_op_matches_float64" > $OUT/t_tma.log 2>&1
echo "[tests rc=$? $(( $(date +%s) - t0 ))s]"; grep -E "Error|passed|failed" $OUT/t_tma.log | head -n 8
t0=$(date +%s)
timeout 240 python3 benchmarks/bench_tma_gemm.py --sweep-budget 30 \
  --csv $OUT/bench_tma_gemm_h100.csv > $OUT/bench_tma_gemm.log 2>&1
echo "[bench rc=$? $(( $(date +%s) - t0 ))s]"
grep "failed" $OUT/bench_tma_gemm.log | head -n 3
t0=$(date +%s)
V=lowrank_relu2_dense,elas_masked,elas_masked_up_epilogue,elas_masked_grad_epilogue,elas_masked_gemm_epilogue
timeout 200 python3 benchmarks/bench_ffn.py --modes reduce-overhead --shapes 2048 --only $V --csv $OUT/ffn_tma.csv > $OUT/ffn_tma.log 2>&1
echo "[ffn rc=$? $(( $(date +%s) - t0 ))s]"
grep "^  " $OUT/bench_tma_gemm.log | grep -v failed
tail -n 7 $OUT/ffn_tma.log
grep -v "^  " $OUT/bench_tma_gemm.log | tail -n 7
