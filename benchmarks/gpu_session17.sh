#!/usr/bin/env bash
# GPU call: the epilogue GEMMs' GPU tests after sharing the epilogues between the pointer and TMA kernels.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 240 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_lowrank_gemm_gpu.py \
  tests/kernels/test_tma_gemm_gpu.py > $OUT/t_epi.log 2>&1
echo "rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_epi.log | tail -n 8
