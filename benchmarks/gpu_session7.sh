#!/usr/bin/env bash
# GPU call: tests of the changed kernels and the fused FFN, the sparsify sweep, the FFN bench.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run 135 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_lowrank_gemm_gpu.py \
  "tests/kernels/test_sparse24_gpu.py::test_every_block_config" tests/test_fused_ffn_gpu.py -k "not max-autotune" > $OUT/t_gpu.log 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/t_gpu.log | tail -n 8
run 80 python3 benchmarks/bench_sparsify.py --sweep --csv $OUT/sparsify.csv > $OUT/sparsify.log 2>&1
grep -E "^best" $OUT/sparsify.log; tail -n 11 $OUT/sparsify.log
V=swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_ste,elas_masked_gemm_epilogue,elas_masked_dv_kernel
run 180 python3 benchmarks/bench_ffn.py --modes reduce-overhead --only $V --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
run 75 python3 benchmarks/bench_ffn.py --modes default --only lowrank_relu2_dense,elas_masked,elas_ste --csv $OUT/ffn_def.csv > $OUT/ffn_def.log 2>&1
tail -n 15 $OUT/ffn_ro.log; tail -n 7 $OUT/ffn_def.log
run 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "max-autotune" > $OUT/t_mat.log 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/t_mat.log | tail -n 4
