#!/usr/bin/env bash
# GPU call (review): the grad kernel's metadata offsets taken from meta_word (sparse24_epilogue.cuh)
# instead of a second tile formula: the CUTLASS kernel tests and the kernel benchmark.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 60 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 2 $OUT/bench.log
