#!/usr/bin/env bash
# GPU call (tenth session): a third 350m sample with the committed library, full rank in the same
# call (every linear low rank, CUDA graphs).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_bench_train llama-350m 420 full lowrank-attn elas-masked-attn
cd "$OUT" && tar czf s84.tgz --remove-files -- * && ls
