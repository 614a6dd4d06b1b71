#!/usr/bin/env bash
# GPU call: the grad kernel whose compressed S comes into shared memory by the producer warp (one
# TMA box of values + one bulk copy of metadata per subtile; session 43 used 65 bulk copies): tests, bench, profile.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
NCU=/usr/local/cuda/bin/ncu
timeout 200 $NCU --profile-from-start off --clock-control none --set full --import-source no \
  -o $OUT/prof python3 benchmarks/profile_cutlass.py > $OUT/ncu_run.log 2>&1
echo "ncu rc=$?"
$NCU -i $OUT/prof.ncu-rep --page raw --csv > $OUT/raw.csv 2>&1
$NCU -i $OUT/prof.ncu-rep --page source --print-source sass --csv > $OUT/sass.csv 2>&1
rm -f $OUT/prof.ncu-rep
tail -n 3 $OUT/bench.log
