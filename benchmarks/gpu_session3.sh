#!/usr/bin/env bash
# GPU call: `elas-compile bench` at 350m (the issue's targets), then the quality runs.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout ${BENCH_TIMEOUT:-220} elas-compile bench --preset llama-350m --variants ${BENCH_VARIANTS:-full lowrank-attn elas-masked-attn} --steps 10 --warmup 3 --out $OUT/bench > $OUT/bench.log 2>&1
tail -n 12 $OUT/bench.log
STEPS=${STEPS:-600} timeout ${QUALITY_TIMEOUT:-250} bash benchmarks/gpu_quality.sh
ls $OUT $OUT/bench
