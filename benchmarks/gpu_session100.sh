#!/usr/bin/env bash
# GPU call (twelfth session): the layout-copy pass (passes/layout_copies.py) on the 350m step:
# dense low rank with the copies kept (ELAS_LAYOUT_COPIES=keep) and skipped (every linear low rank,
# CUDA graphs), the generated code grepped for the identity copy kernels; then the pass's GPU test
# (same gradients, no identity copy kernels). Asked of an H200 (no H100 had come); it ran on an H100.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
bench() {  # TAG VARIANT...
  local tag=$1; shift
  TORCH_LOGS=output_code timeout 110 elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
    --variants "$@" --steps 10 --warmup 3 --out "$OUT/bench_$tag" > "$OUT/train_$tag.log" 2>&1
  echo "$tag rc=$? identity-copy calls: $(grep -c 'clone_transpose_view_[0-9]*.run(' $OUT/train_$tag.log)" \
       "elas.contiguous copies: $(grep -c 'fused_contiguous[a-z_]*[0-9]*.run(' $OUT/train_$tag.log)"
  grep -E "^llama-350m" "$OUT/train_$tag.log" | tail -n $#
}
ELAS_LAYOUT_COPIES=keep bench keep lowrank-attn
bench skip lowrank-attn
gpu_pytest layout 60 tests/test_layout_copies.py -k cuda -s
grep -h "{.keep" "$OUT/t_layout.log"
cd "$OUT" && for f in train_*.log; do gzip -9 "$f"; done && tar czf s100.tgz --remove-files -- *
