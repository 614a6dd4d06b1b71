#!/usr/bin/env bash
# GPU call: `elas-compile bench` at 130m under CUDA graphs, all variants of issue 5 in one run.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run ${BENCH_TIMEOUT:-560} elas-compile bench --preset llama-130m --compile-mode reduce-overhead \
  --variants ${BENCH_VARIANTS:-full lowrank-attn elas-masked-attn lowrank elas-masked} \
  --steps 10 --warmup 3 --out $OUT/bench > $OUT/bench.log 2>&1
grep -v Warning $OUT/bench.log | grep -v "warn" | tail -n 9
