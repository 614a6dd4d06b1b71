#!/usr/bin/env bash
# GPU call: `elas-compile bench` at 350m under CUDA graphs, every linear low rank, with full rank
# and both ELAS backward modes in the same run (the "in one run").
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run ${BENCH_TIMEOUT:-540} elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants ${BENCH_VARIANTS:-lowrank-attn elas-masked-attn full elas-ste-attn} \
  --steps 10 --warmup 3 --out $OUT/bench > $OUT/bench.log 2>&1
grep -v Warning $OUT/bench.log | grep -v "warn" | tail -n 8
