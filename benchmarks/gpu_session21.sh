#!/usr/bin/env bash
# GPU call: `elas-compile bench` at 1b under CUDA graphs: full rank, and low rank / ELAS with every
# linear low rank (the ELAS paper's factorization).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run ${BENCH_TIMEOUT:-560} elas-compile bench --preset llama-1b --compile-mode reduce-overhead \
  --variants ${BENCH_VARIANTS:-lowrank-attn elas-masked-attn full} \
  --steps 10 --warmup 3 --out $OUT/bench > $OUT/bench.log 2>&1
grep -v Warning $OUT/bench.log | grep -v "warn" | tail -n 7
