#!/usr/bin/env bash
# GPU call: cuBLAS layouts of the FFN's large GEMMs, then the 60M quality LR sweep (2e-3, 4e-3).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 150 python3 benchmarks/bench_gemm_layout.py --csv $OUT/gemm_layout.csv > $OUT/gemm_layout.log 2>&1
echo "layout rc=$?"
LRS="2e-3 4e-3" JOBS=8 timeout 420 bash benchmarks/gpu_quality_sweep.sh > $OUT/sweep.log 2>&1
echo "sweep rc=$?"
tail -n 14 $OUT/sweep.log
tail -n 22 $OUT/gemm_layout.log
