#!/usr/bin/env bash
# GPU call (tenth session): the FFN op's GPU tests with the final library (float64 references on
# both ELAS_DV_KERNEL paths; compiled LLaMA in default, reduce-overhead and max-autotune modes).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_pytest ffn 560 tests/test_fused_ffn_gpu.py
