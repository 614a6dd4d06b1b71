#!/usr/bin/env bash
# GPU call: the compiled-llama GPU tests (fixed), then `elas-compile bench` at 350m under CUDA graphs.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run 110 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k compiled_llama > $OUT/t_llama.log 2>&1
grep -E "passed|failed|Error" $OUT/t_llama.log | tail -n 8
run ${BENCH_TIMEOUT:-450} elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants ${BENCH_VARIANTS:-lowrank-attn elas-masked-attn full elas-ste-attn} \
  --steps 10 --warmup 3 --out $OUT/bench > $OUT/bench.log 2>&1
grep -v Warning $OUT/bench.log | grep -v "_ALG_CACHE" | tail -n 8
