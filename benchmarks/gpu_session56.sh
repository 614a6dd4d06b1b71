#!/usr/bin/env bash
# GPU call: the 350m step's top kernels with the loss compiled into the graph (lowrank-attn and
# ELAS masked-attn; profile_step.py), then `elas-compile bench` at 350m under CUDA graphs with the
# loss in the graph (the new default) for full rank, dense low rank and ELAS, every linear low rank.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 210 python3 benchmarks/profile_step.py --preset llama-350m --variants elas-masked-attn lowrank-attn \
  --loss graph --csv $OUT/step_profile.csv > $OUT/step_profile.log 2>&1
echo "profile rc=$?"; grep -v Warn $OUT/step_profile.log | tail -n 3
timeout 340 elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants lowrank-attn elas-masked-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"; grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 6
