#!/usr/bin/env bash
# GPU call: the CUTLASS kernels after both take their GEMM type and launch from gemm_sm90.cuh (review
# of the change): kernel tests, benchmark (expected: session 38's), the FFN op's tests with the library.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
ELAS_CUTLASS=1 timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k fused_op \
  > $OUT/t_ffn.log 2>&1
echo "ffn op tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn.log | tail -n 8
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
