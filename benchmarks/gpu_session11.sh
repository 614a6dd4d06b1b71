#!/usr/bin/env bash
# GPU call: cuSPARSELt plan chosen by GPU-only timing (not torch's search): tests, the cuSPARSELt
# sweep with the chosen plan, and the FFN block at both shapes (graphs + default for memory).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:3}"; }
run 100 python3 -m pytest -x --tb=short -q -p no:cacheprovider "tests/test_fused_ffn_gpu.py::test_fused_op_matches_float64" \
  tests/kernels/test_lowrank_gemm_gpu.py::test_up_gemm > $OUT/t_plan.log 2>&1
grep -E "Error|passed|failed" $OUT/t_plan.log | head -n 5
run 60 python3 benchmarks/bench_cslt.py --csv $OUT/bench_cslt_h100.csv > $OUT/bench_cslt.log 2>&1
grep -E "dense|searched|plan" $OUT/bench_cslt.log
V=swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_ste
run 250 python3 benchmarks/bench_ffn.py --modes reduce-overhead --only $V --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
run 110 python3 benchmarks/bench_ffn.py --modes default --only lowrank_relu2_dense,elas_masked,elas_ste --csv $OUT/ffn_def.csv > $OUT/ffn_def.log 2>&1
tail -n 11 $OUT/ffn_ro.log; tail -n 7 $OUT/ffn_def.log
