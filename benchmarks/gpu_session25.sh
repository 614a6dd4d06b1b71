#!/usr/bin/env bash
# GPU call: smoke run of every benchmark script after they moved to benchmarks/_common (small shapes;
# the numbers are not recorded).
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:4}"; }
run 90 python3 benchmarks/bench_sparsify.py --shapes 2048x1024 --csv $OUT/s.csv > $OUT/smoke.log 2>&1
run 90 python3 benchmarks/bench_tma_gemm.py --shapes 2048x1024x64 --sweep-budget 5 --csv $OUT/t.csv >> $OUT/smoke.log 2>&1
run 90 python3 benchmarks/bench_cslt.py --shapes 2048x1024x64 --csv $OUT/c.csv >> $OUT/smoke.log 2>&1
run 90 python3 benchmarks/bench_gemm_layout.py --shapes 1024x512x64 --blas cublas --csv $OUT/g.csv >> $OUT/smoke.log 2>&1
run 150 python3 benchmarks/bench_ffn.py --tokens 2048 --shapes 1024 --only elas_masked,lowrank_relu2_dense --modes default --csv $OUT/f.csv >> $OUT/smoke.log 2>&1
for f in $OUT/*.csv; do echo "== $(basename $f): $(head -c 160 $f | head -n 2 | tr '\n' ' ')"; done
