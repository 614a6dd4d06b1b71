#!/usr/bin/env bash
# First GPU call: install, GPU tests (kernels + fused FFN), then the FFN benchmark.
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > $OUT/install.log 2>&1 || { cat $OUT/install.log; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch,triton;print(torch.__version__, triton.__version__, torch.backends.cusparselt.version())"
timeout 240 python3 -m pytest -q -x tests/test_fused_ffn_gpu.py tests/kernels/test_sparse24_gpu.py 2>&1 | tee $OUT/gpu_tests.log | tail -25
timeout 300 python3 benchmarks/bench_ffn.py --csv $OUT/ffn.csv 2>&1 | tee $OUT/bench_ffn.log | grep -v "^{" | tail -30
