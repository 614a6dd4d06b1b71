#!/usr/bin/env bash
# GPU call: why the CUTLASS backward kernel is slow (1.06 ms vs 0.23 for its GEMM alone, session 34):
# its diagnostic builds (no S store / no compressed-S loads / W read K-major) next to it, and the
# kernel tests.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 120 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 120 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
