#!/usr/bin/env bash
# GPU call: the 1b preset with today's code (loss in the graph, RoPE tables once, both CUTLASS
# kernels, the up kernel's overlapping epilogues): dense low rank and ELAS masked, every linear low
# rank, CUDA graphs (the 1b numbers in the docs were from the fourth session, before all of these).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_bench_train llama-1b 540 lowrank-attn elas-masked-attn
