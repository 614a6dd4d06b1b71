#!/usr/bin/env bash
# GPU call: peak memory of the full-rank 1b model, default mode (session 22's time ran out before it).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run 480 elas-compile bench --preset llama-1b --variants full --steps 4 --warmup 2 --out $OUT/bench > $OUT/bench.log 2>&1
grep -v Warning $OUT/bench.log | grep -v "warn" | tail -n 4
