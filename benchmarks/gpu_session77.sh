#!/usr/bin/env bash
# GPU call: 350m with the final library of the ninth session (grad kernel's register-only
# epilogue): dense low rank, ELAS masked and full rank in one call (every linear low rank, CUDA
# graphs): a third sample of the ratio and today's vs-full number.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_bench_train llama-350m 540 lowrank-attn elas-masked-attn full
