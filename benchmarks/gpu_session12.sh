#!/usr/bin/env bash
# GPU call: where the FFN's time goes (torch.profiler per-kernel tables, default mode, d = 2048)
# and the cuSPARSELt sweep with the chosen plan.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:3}"; }
mkdir -p $OUT/prof
run 150 python3 benchmarks/bench_ffn.py --modes default --shapes 2048 --only lowrank_relu2_dense,elas_masked \
  --profile $OUT/prof --csv $OUT/ffn_prof.csv > $OUT/ffn_prof.log 2>&1
run 60 python3 benchmarks/bench_cslt.py --csv $OUT/bench_cslt_h100.csv > $OUT/bench_cslt.log 2>&1
grep -E "dense|searched|plan|Error" $OUT/bench_cslt.log
ls $OUT/prof
