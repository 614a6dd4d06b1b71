#!/usr/bin/env bash
# GPU call: every kernel of one 350m training step (every linear low rank), dense low rank vs ELAS
# masked (profile_step.py --top 400, annotations skipped), to find the ~1 ms of fused elementwise
# work the ELAS step has beyond the FFN's relu² kernels it removes; then the GPU tests of the FFN
# op, the RoPE pass and the training loop's compiled loss (timed out at 200 s in session 62).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
timeout 300 python3 benchmarks/profile_step.py --preset llama-350m --variants lowrank-attn elas-masked-attn \
  --top 400 --csv $OUT/step_profile.csv > $OUT/step_profile.log 2>&1
echo "profile rc=$?"
gpu_pytest ffn_trig 270 tests/test_fused_ffn_gpu.py tests/test_trig_tables.py tests/test_train_loss.py
grep -v Warn $OUT/step_profile.log | tail -n 5
