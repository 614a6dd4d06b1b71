#!/usr/bin/env bash
# GPU call: peak memory at 1b (default mode: CUDA graphs' pools hide activations from the counter),
# then the compiled-LLaMA GPU test under max-autotune.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run ${BENCH_TIMEOUT:-300} elas-compile bench --preset llama-1b \
  --variants ${BENCH_VARIANTS:-elas-masked-attn lowrank-attn full} \
  --steps 4 --warmup 2 --out $OUT/bench > $OUT/bench.log 2>&1
grep -v Warning $OUT/bench.log | grep -v "warn" | tail -n 7
run 250 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "max-autotune" > $OUT/t_ma.log 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/t_ma.log | tail -n 6
