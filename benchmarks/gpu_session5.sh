#!/usr/bin/env bash
# GPU call: the compiled-llama GPU tests (the reduce-overhead failure), the new GEMM-epilogue
# kernels' tests, the sparsify sweep (rows tiling, GEMM configs), the FFN bench at d=2048.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run 170 python3 -m pytest -x -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py > $OUT/t_ffn.log 2>&1
tail -n 25 $OUT/t_ffn.log
run 150 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_lowrank_gemm_gpu.py \
  "tests/kernels/test_sparse24_gpu.py::test_every_block_config" > $OUT/t_kern.log 2>&1
tail -n 25 $OUT/t_kern.log
run 140 python3 benchmarks/bench_sparsify.py --sweep --csv $OUT/sparsify.csv > $OUT/sparsify.log 2>&1
grep -E "best|integer" $OUT/sparsify.log; tail -n 12 $OUT/sparsify.log
run 130 python3 benchmarks/bench_ffn.py --shapes 2048 --modes reduce-overhead \
  --only lowrank_relu2_dense,elas_masked,elas_masked_unfused,elas_ste --csv $OUT/ffn.csv > $OUT/ffn.log 2>&1
tail -n 6 $OUT/ffn.log
