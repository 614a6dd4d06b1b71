#!/usr/bin/env bash
# GPU call (tenth session, review): the shared benchmark pieces run once on the GPU after the
# refactor: gpu_compare_libs (the final library against itself: a smoke test of the step),
# bench_cutlass and bench_dv via _common.ffn_operands.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_compare_libs "$PWD/.probe/libelas_cutlass.so" "$PWD/.probe/libelas_cutlass.so"
gpu_bench_cutlass 16384x4096x256 review_s89
timeout 200 python3 benchmarks/bench_dv.py --shapes 16384x4096x256 --csv "$OUT/bench_dv_s89.csv" > "$OUT/bench_dv_s89.log" 2>&1
echo "bench_dv rc=$?"; tail -n 9 "$OUT/bench_dv_s89.log"
