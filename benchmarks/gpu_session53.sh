#!/usr/bin/env bash
# GPU call: issue 5's quality LR sweep refined between the measured points (1e-3, 2e-3, 4e-3 in
# sessions 18-19): the same four runs at 1.5e-3 and 3e-3, 600 steps, eight at once.
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
LRS="1.5e-3 3e-3" JOBS=8 timeout 540 bash benchmarks/gpu_quality_sweep.sh
