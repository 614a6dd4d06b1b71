#!/usr/bin/env bash
# GPU call: the CoLA-form quality result re-run beside full rank in one call (same machine, final
# code): full rank, dense low rank (CoLA form) and ELAS masked (CoLA form) at LR 1.5e-3, 600 steps.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
LRS="1.5e-3" JOBS=3 RUNS="full:--baseline full;lowrank-cola:--baseline lowrank --lowrank-form cola;elas-masked-cola:--backward masked --lowrank-form cola" \
  timeout 420 bash benchmarks/gpu_quality_sweep.sh
