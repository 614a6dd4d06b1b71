#!/usr/bin/env bash
# GPU call (review): the library rebuilt after the review's refactor (the slot -> accumulator index
# written once, acc_index) against the measured one (lib_new4b): kernel tests, bit-identity of
# packed S, dy and S (compare_cutlass_libs.py, its first run as a script), kernel timings.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_review.so" || exit 1
gpu_cutlass_tests review
gpu_compare_libs "$PWD/.probe/lib_new4b.so" "$PWD/.probe/lib_review.so"
gpu_bench_cutlass 16384x4096x256,16384x8192x512 review_s78
