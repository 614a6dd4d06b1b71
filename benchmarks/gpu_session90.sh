#!/usr/bin/env bash
# GPU call (eleventh session): the dense S written by the up kernel (ELAS_DENSE_S=forward, library
# ABI 5; commit dd14773, reverted after this call: the store cost the up kernel what it saved the
# grad kernel, 0.127 vs 0.087 ms against 0.105 vs 0.144). Kernel tests, the FFN op's tests of the
# new path, kernel timings, then the 350m step with S from the backward (default) and the forward.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_s90.so" || exit 1
gpu_cutlass_tests s90
gpu_pytest ffn_dense_s 150 tests/test_fused_ffn_gpu.py -k "dense_s"
gpu_bench_cutlass 16384x4096x256,16384x8192x512 s90
for where in backward forward; do
  ELAS_DENSE_S=$where timeout 200 elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
    --variants lowrank-attn elas-masked-attn --steps 10 --warmup 3 --out "$OUT/bench_350m_$where" \
    > "$OUT/train_350m_$where.log" 2>&1
  echo "350m ELAS_DENSE_S=$where rc=$?"; grep -E "^llama" "$OUT/train_350m_$where.log" | tail -n 2
done
cd "$OUT" && tar czf s90.tgz --remove-files -- *
