#!/usr/bin/env bash
# GPU call: the CUTLASS kernels (up: relu² + 2:4 + compressed store in the epilogue, three store
# variants; grad: dy + dense S from the compressed S in the epilogue), built here with nvcc 13.0
# into .probe/libelas_cutlass.so: GPU tests, kernel benchmark, then the FFN at d = 2048 with and
# without them (CUDA graphs).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 200 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 12
timeout 150 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
timeout 240 python3 benchmarks/bench_ffn.py --modes reduce-overhead --shapes 2048 \
  --only lowrank_relu2_dense,elas_masked,elas_masked_cutlass --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
echo "ffn rc=$?"; tail -n 6 $OUT/ffn_ro.log; tail -n 4 $OUT/bench.log
