#!/usr/bin/env bash
# GPU call: the grad kernel with 64 x 64 subtiles again, the metadata offset fixed (session 50's
# sanitizer run: values right, nibbles wrong from the second subtile on: tile * 512 instead of
# tile * 256 bytes). Kernel tests; if they pass: benchmark, FFN op tests, issue 4's FFN table.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
rc=$?; echo "kernel tests rc=$rc"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
[ $rc -eq 0 ] || exit 1
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
timeout 150 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "not max-autotune" \
  > $OUT/t_ffn_auto.log 2>&1
echo "ffn tests (auto) rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_auto.log | tail -n 8
timeout 280 python3 benchmarks/bench_ffn.py --modes graph,reduce-overhead,default \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_masked_cutlass_up,elas_masked_triton,elas_ste \
  --csv $OUT/ffn.csv > $OUT/ffn.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn.log | grep -v Warn | tail -n 43
