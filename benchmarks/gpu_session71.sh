#!/usr/bin/env bash
# GPU call: the grad kernel's register-only epilogue (Relu2GradDirect, overlapping epilogues) in
# .probe/lib_new.so against the previous library (.probe/lib_old.so: collective epilogue, visitor
# node, TMA stores): its kernel tests, bit-identity of dy and S against the old kernel, kernel
# timings of both, then 350m dense low rank vs ELAS masked (every linear low rank, CUDA graphs).
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_new.so" || exit 1
gpu_cutlass_tests new
# (the comparison ran inline here; it now lives in compare_cutlass_libs.py, same code)
gpu_compare_libs "$PWD/.probe/lib_old.so" "$PWD/.probe/lib_new.so"
ELAS_CUTLASS_LIB=$PWD/.probe/lib_old.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 old_s71
gpu_bench_cutlass 16384x4096x256,16384x8192x512 new_s71
gpu_bench_train llama-350m 330 lowrank-attn elas-masked-attn
