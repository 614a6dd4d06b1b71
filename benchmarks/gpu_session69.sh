#!/usr/bin/env bash
# GPU call (review): the two 2:4 epilogues now share their host-side plumbing (Sparse24Plumbing in
# sparse24_epilogue.cuh) instead of writing it twice: the rebuilt library's CUTLASS kernel tests and
# kernel benchmark.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_pytest cutlass 90 tests/kernels/test_cutlass_gpu.py
gpu_bench_cutlass 16384x4096x256,16384x8192x512 review
