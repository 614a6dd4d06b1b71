#!/usr/bin/env bash
# GPU call: the FFN op's GPU tests with the new up kernel (ELAS_CUTLASS=auto: float64 references,
# compiled LLaMA in default and reduce-overhead modes), then a second 350m sample of dense low rank
# and ELAS masked (every linear low rank, CUDA graphs) for the run-to-run spread.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_pytest ffn 280 tests/test_fused_ffn_gpu.py
gpu_bench_train llama-350m 300 lowrank-attn elas-masked-attn
