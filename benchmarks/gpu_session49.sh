#!/usr/bin/env bash
# GPU call: the grad kernel with 64 x 64 epilogue subtiles too (as the up kernel since session 48):
# kernel tests, kernel benchmark, the FFN op's GPU tests (ELAS_CUTLASS=auto: both kernels), then
# issue 4's FFN table in all three modes (graph, reduce-overhead, default for saved memory).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
timeout 200 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "not max-autotune" \
  > $OUT/t_ffn_auto.log 2>&1
echo "ffn tests (auto) rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_auto.log | tail -n 8
timeout 330 python3 benchmarks/bench_ffn.py --modes graph,reduce-overhead,default \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_masked_cutlass_up,elas_masked_triton,elas_ste \
  --csv $OUT/ffn.csv > $OUT/ffn.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn.log | grep -v Warn | tail -n 44
