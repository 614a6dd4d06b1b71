#!/usr/bin/env bash
# GPU call (eleventh session): where the 350m step's time goes under CUDA graphs with today's
# kernels (profile_step.py --compile-mode reduce-overhead): kernel time per category and the
# step's idle time (step ms - kernel ms), dense low rank against ELAS masked, every linear low rank.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
timeout 400 python3 benchmarks/profile_step.py --preset llama-350m --variants lowrank-attn elas-masked-attn \
  --compile-mode reduce-overhead --steps 10 --profile-steps 3 --top 400 --csv $OUT/profile_s95.csv > $OUT/profile_s95.log 2>&1
echo "profile rc=$?"
grep -v Warn $OUT/profile_s95.log | tail -n 4
cd "$OUT" && tar czf s95.tgz --remove-files -- *
