#!/usr/bin/env bash
# GPU call: Nsight Compute profile of the CUTLASS kernels beside cuBLAS and the Triton passes
# (benchmarks/profile_cutlass.py), to find where the grad kernel's epilogue spends its time.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"; $NCU --version | tail -1
timeout 400 $NCU --profile-from-start off --clock-control none --set full --import-source no \
  -o $OUT/prof python3 benchmarks/profile_cutlass.py > $OUT/ncu_run.log 2>&1
echo "ncu rc=$?"; tail -n 5 $OUT/ncu_run.log
$NCU -i $OUT/prof.ncu-rep --page details > $OUT/details.txt 2>&1
$NCU -i $OUT/prof.ncu-rep --page raw --csv > $OUT/raw.csv 2>&1
$NCU -i $OUT/prof.ncu-rep --page source --print-source sass --csv > $OUT/sass.csv 2>&1
ls -la $OUT
grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Registers Per|Achieved Occupancy" $OUT/details.txt | head -n 60
