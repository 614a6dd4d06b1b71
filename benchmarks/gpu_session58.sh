#!/usr/bin/env bash
# GPU call: (1) the 350m step's kernels with the RoPE table pass (lowrank-attn; profile_step.py);
# (2) quality with CoLA's factorization U silu(V x) (--lowrank-form cola), llama-60m, 600 steps,
# LR 1.5e-3 / 2e-3 / 3e-3 (full rank: 98.1 at 1.5e-3, session 53), nine runs at once, while
# the RoPE pass's GPU test runs beside them.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 120 python3 benchmarks/profile_step.py --preset llama-350m --variants lowrank-attn --loss graph \
  --csv $OUT/step_profile.csv > $OUT/step_profile.log 2>&1
echo "profile rc=$?"; grep -v Warn $OUT/step_profile.log | tail -n 2
(timeout 300 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_trig_tables.py > $OUT/t_trig.log 2>&1; echo "trig tests rc=$?" >> $OUT/t_trig.log) &
LRS="1.5e-3 2e-3 3e-3" JOBS=10 RUNS="lowrank-cola:--baseline lowrank --lowrank-form cola;elas-masked-cola:--backward masked --lowrank-form cola;elas-ste-cola:--backward ste --lowrank-form cola" \
  timeout 400 bash benchmarks/gpu_quality_sweep.sh
wait
tail -n 3 $OUT/t_trig.log
