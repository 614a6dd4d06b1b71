#!/usr/bin/env bash
# GPU call: (1) the 64 x 64-subtile grad kernel of session 49 (wrong S, an illegal address later),
# built aside as .probe/lib_grad64.so, under compute-sanitizer on one small call, with where its S
# differs; (2) the kept code (up kernel 64 x 64 subtiles, grad kernel 64 x 32 with TMA loads):
# kernel tests, kernel benchmark, the FFN op's GPU tests (auto: both kernels), issue 4's FFN table
# in graph, reduce-overhead and default (saved memory) modes.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
ELAS_CUTLASS_LIB=$PWD/.probe/lib_grad64.so timeout 60 python3 .probe/dbg/san.py > $OUT/grad64_plain.log 2>&1
echo "grad64 plain rc=$?"; tail -n 6 $OUT/grad64_plain.log
ELAS_CUTLASS_LIB=$PWD/.probe/lib_grad64.so timeout 120 /usr/local/cuda/bin/compute-sanitizer --tool memcheck \
  --print-limit 5 python3 .probe/dbg/san.py > $OUT/grad64_memcheck.log 2>&1
echo "grad64 memcheck rc=$?"; grep -E "Invalid|at 0x|by thread|Address|ERROR SUMMARY" $OUT/grad64_memcheck.log | head -n 12
export ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
timeout 150 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "not max-autotune" \
  > $OUT/t_ffn_auto.log 2>&1
echo "ffn tests (auto) rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_auto.log | tail -n 8
timeout 280 python3 benchmarks/bench_ffn.py --modes graph,reduce-overhead,default \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_masked_cutlass_up,elas_masked_triton,elas_ste \
  --csv $OUT/ffn.csv > $OUT/ffn.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn.log | grep -v Warn | tail -n 43
