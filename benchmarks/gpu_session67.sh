#!/usr/bin/env bash
# GPU call: the library built by `python -m elas_compile.kernels.cutlass_build` with the up kernel's
# register-only epilogue on the derived ping-pong kernel (build E of session 66, now the library's):
# CUTLASS kernel tests, bench_cutlass, then the 350m training step under CUDA graphs (full rank,
# dense low rank and ELAS masked, every linear low rank).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_pytest cutlass 90 tests/kernels/test_cutlass_gpu.py
gpu_bench_cutlass 16384x4096x256,16384x8192x512,16384x11008x512 final
gpu_bench_train llama-350m 450 lowrank-attn elas-masked-attn full
