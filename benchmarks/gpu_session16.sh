#!/usr/bin/env bash
# GPU call: the experimental GEMM kernels' GPU tests after the _element fix (Triton 3.6 typing).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 200 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_lowrank_gemm_gpu.py > $OUT/t_gemm.log 2>&1
echo "rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_gemm.log | tail -n 8
