#!/usr/bin/env bash
# GPU call: the GPU test files on the final code (kernels, TMA experiment, fused FFN incl. the
# compiled LLaMA in default and reduce-overhead modes).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run 330 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_sparse24_gpu.py tests/kernels/test_tma_gemm_gpu.py \
  tests/kernels/test_lowrank_gemm_gpu.py tests/test_fused_ffn_gpu.py -k "not max-autotune" > $OUT/t_final.log 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/t_final.log | tail -n 12
