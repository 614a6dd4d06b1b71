#!/usr/bin/env bash
# GPU call: the GEMM GPU tests after their checks moved to tests/kernels/sparse24_cases, and the
# CUTLASS probe after its 2:4 rule became one function (same checks expected as in session 30).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 60 ./.probe/cutlass_probe 2>&1 | grep -E "top2of4|rel err" | tee $OUT/probe.log
timeout 300 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_lowrank_gemm_gpu.py \
  tests/kernels/test_tma_gemm_gpu.py > $OUT/t_gemm.log 2>&1
echo "rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_gemm.log | tail -n 6
