#!/usr/bin/env bash
# GPU call (twelfth session): 350m with the library rebuilt from CUTLASS v4.7.0 this session, full
# rank in the same call (every linear low rank, CUDA graphs), beside gpu_session98's 1b.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_bench_train llama-350m 420 full lowrank-attn elas-masked-attn
cd "$OUT" && tar czf s99.tgz --remove-files -- *
