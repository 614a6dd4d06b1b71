#!/usr/bin/env bash
# GPU call: the 60M quality comparison at twice the token budget (1200 steps, 9.8M tokens), peak LR
# 2e-3 (the best of the 600-step sweep for full rank and ELAS, a tie for low rank), four runs at once.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
STEPS=1200 LRS="2e-3" JOBS=4 timeout 540 bash benchmarks/gpu_quality_sweep.sh > $OUT/sweep.log 2>&1
echo "sweep rc=$?"
cd $OUT && mkdir -p m && for d in sweep/*-lr*/; do n=$(basename $d); cp $d/metrics.csv m/$n.csv 2>/dev/null; done
tar czf metrics.tgz m && rm -rf m sweep.tgz sweep
cd - > /dev/null
tail -n 6 $OUT/sweep.log
