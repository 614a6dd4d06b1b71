#!/usr/bin/env bash
# GPU call (tenth session): the committed library (lib_s82C) in the training step: a second 350m
# sample and 1b, dense low rank vs ELAS masked (every linear low rank, CUDA graphs).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_bench_train llama-350m 280 lowrank-attn elas-masked-attn
gpu_bench_train llama-1b 300 lowrank-attn elas-masked-attn
cd "$OUT" && tar czf s83.tgz --remove-files -- * && ls
