#!/usr/bin/env bash
# GPU call: the compiled-llama tests (default, reduce-overhead, max-autotune) on the final FFN code.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
t0=$(date +%s)
timeout 430 python3 -m pytest -v --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k compiled_llama > $OUT/t_llama.log 2>&1
echo "[rc=$? $(( $(date +%s) - t0 ))s]"
grep -E "PASSED|FAILED|passed|failed|Error" $OUT/t_llama.log | tail -n 8
