#!/usr/bin/env bash
# GPU call: (1) review of the grad kernel's meta_word offsets (gpu_session54.sh: CUTLASS kernel
# tests + kernel benchmark); (2) where the 350m training step's GPU time goes (profile_step.py:
# kernel time per category, the loss eager on fp32 logits vs compiled with the model).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
bash benchmarks/gpu_session54.sh
timeout 420 python3 benchmarks/profile_step.py --preset llama-350m --variants full lowrank-attn elas-masked-attn \
  --loss eager graph --csv $OUT/step_profile.csv > $OUT/step_profile.log 2>&1
echo "profile rc=$?"; grep -v Warn $OUT/step_profile.log | tail -n 7
