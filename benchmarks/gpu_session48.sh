#!/usr/bin/env bash
# GPU call: the up kernel with 64 x 64 epilogue subtiles (two 32-column blocks per subtile: half the
# subtile barriers, twice the independent work between them): kernel tests, benchmark, then the
# FFN table at d = 2048 in graph mode.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
timeout 200 python3 benchmarks/bench_ffn.py --modes graph --shapes 2048 \
  --only swiglu_fullrank,lowrank_relu2_dense,elas_masked --csv $OUT/ffn_graph.csv > $OUT/ffn_graph.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn_graph.log | grep -v Warn | tail -n 4
