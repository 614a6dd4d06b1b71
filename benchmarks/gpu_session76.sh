#!/usr/bin/env bash
# GPU call: the FFN op's GPU tests with the committed library (grad kernel's register-only epilogue;
# float64 references, compiled LLaMA default + reduce-overhead), then 1b dense low rank vs ELAS
# masked (every linear low rank, CUDA graphs): the grad kernel is 6% faster at 1b's FFN shape.
# Argument: tests | bench | all (default); run as two calls, each under the 600 s limit.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
[ "${1:-all}" = bench ] || gpu_pytest ffn 280 tests/test_fused_ffn_gpu.py
[ "${1:-all}" = tests ] || gpu_bench_train llama-1b 540 lowrank-attn elas-masked-attn
