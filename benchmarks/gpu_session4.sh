#!/usr/bin/env bash
# GPU call: the GPU tests (verbose, per-test result), then `elas-compile bench` at 350m.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
t0=$(date +%s)
timeout ${TEST_TIMEOUT:-260} python3 -m pytest -v -rfE --durations=10 -p no:cacheprovider \
  tests/kernels/test_sparse24_gpu.py tests/test_fused_ffn_gpu.py > $OUT/gputests.log 2>&1
echo "tests rc=$? in $(( $(date +%s) - t0 )) s"
grep -E "FAILED|ERROR|passed|failed" $OUT/gputests.log | tail -n 15
t0=$(date +%s)
timeout ${BENCH_TIMEOUT:-300} elas-compile bench --preset llama-350m \
  --variants ${BENCH_VARIANTS:-full lowrank-attn elas-masked-attn elas-ste-attn lowrank elas-masked} \
  --steps 10 --warmup 3 --out $OUT/bench > $OUT/bench.log 2>&1
echo "bench rc=$? in $(( $(date +%s) - t0 )) s"
tail -n 12 $OUT/bench.log
