#!/usr/bin/env bash
# GPU call: the FFN op's GPU tests with the CUTLASS library present: the default (auto: up kernel)
# against float64 and in the compiled LLaMA (default and reduce-overhead modes), then the op tests
# with ELAS_CUTLASS=1 (up + grad kernels).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 300 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "not max-autotune" \
  > $OUT/t_ffn_auto.log 2>&1
echo "auto rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_auto.log | tail -n 8
ELAS_CUTLASS=1 timeout 150 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py \
  -k fused_op > $OUT/t_ffn_both.log 2>&1
echo "both rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_both.log | tail -n 8
