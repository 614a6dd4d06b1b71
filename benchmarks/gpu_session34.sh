#!/usr/bin/env bash
# GPU call: the CUTLASS kernels after the backward kernel loads its compressed S once per tile
# (session 33: once per subtile, 2x slower than the split path): GPU tests, the FFN op's GPU tests
# with ELAS_CUTLASS=1, the kernel benchmark, then issue 4's FFN table with the CUTLASS variant.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 120 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
ELAS_CUTLASS=1 timeout 150 python3 -m pytest -q --tb=short -p no:cacheprovider -W error::UserWarning:elas_compile.fused_ffn \
  tests/test_fused_ffn_gpu.py > $OUT/t_ffn.log 2>&1
echo "ffn tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn.log | tail -n 8
timeout 100 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
timeout 300 python3 benchmarks/bench_ffn.py --modes reduce-overhead \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_ste,elas_masked_cutlass \
  --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
echo "ffn rc=$?"
timeout 100 python3 benchmarks/bench_ffn.py --modes default --only lowrank_relu2_dense,elas_masked,elas_masked_cutlass \
  --csv $OUT/ffn_def.csv > $OUT/ffn_def.log 2>&1
grep -v '^{' $OUT/ffn_ro.log | grep -v Warn | tail -n 14; grep -v '^{' $OUT/ffn_def.log | grep -v Warn | tail -n 7; tail -n 3 $OUT/bench.log
