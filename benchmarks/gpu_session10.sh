#!/usr/bin/env bash
# GPU call: cuSPARSELt at the FFN's shapes under CUDA graphs (algorithm x split-K x B layout x
# transposed result) against dense.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
t0=$(date +%s)
timeout 300 python3 benchmarks/bench_cslt.py --csv $OUT/bench_cslt_h100.csv > $OUT/bench_cslt.log 2>&1
echo "[cslt rc=$? $(( $(date +%s) - t0 ))s]"
cat $OUT/bench_cslt.log | tail -n 40
