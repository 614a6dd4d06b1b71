#!/usr/bin/env bash
# GPU call: the CUTLASS up-projection kernel (relu² + 2:4 + compressed store in the GEMM epilogue),
# built here with nvcc 13.0 into .probe/libelas_cutlass.so: its GPU tests, then its benchmark.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 240 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "tests rc=$?"; grep -E "passed|failed|FAILED|Error|error" $OUT/t_cutlass.log | tail -n 12
timeout 200 python3 benchmarks/bench_cutlass.py --csv $OUT/bench_cutlass.csv 2>&1 | tail -n 8 | tee $OUT/bench.log
