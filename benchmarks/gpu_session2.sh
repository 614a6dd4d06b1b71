#!/usr/bin/env bash
# GPU call: install, GPU tests (kernels + fused FFN), sparsify kernel bench, FFN bench, torch's
# own anchors (../shared/reference, carried in .devshared/) in the same run.
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > $OUT/install.log 2>&1 || { cat $OUT/install.log; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch,triton;print('torch', torch.__version__, 'triton', triton.__version__, 'cusparselt', torch.backends.cusparselt.version())"
timeout 200 python3 -m pytest -q tests/kernels/test_sparse24_gpu.py tests/test_fused_ffn_gpu.py 2>&1 > $OUT/gpu_tests.log; tail -4 $OUT/gpu_tests.log; grep -E "^(FAILED|ERROR)" $OUT/gpu_tests.log | head
timeout 90 python3 benchmarks/bench_sparsify.py --csv $OUT/bench_sparsify.csv > $OUT/bench_sparsify.log 2>&1; tail -12 $OUT/bench_sparsify.log
timeout ${FFN_TIMEOUT:-260} python3 benchmarks/bench_ffn.py --csv $OUT/bench_ffn.csv ${FFN_ARGS:-} > $OUT/bench_ffn.log 2>&1; grep -v '^{' $OUT/bench_ffn.log | grep -v Warning | tail -28
