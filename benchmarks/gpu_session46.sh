#!/usr/bin/env bash
# GPU call: per-kernel profile of the ELAS and dense low-rank FFNs at d = 2048 (both CUTLASS
# kernels), then the 350m training step (every linear low rank) with both kernels in auto.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 150 python3 benchmarks/bench_ffn.py --modes reduce-overhead --shapes 2048 --only lowrank_relu2_dense,elas_masked \
  --profile $OUT/prof --csv $OUT/ffn_prof.csv > $OUT/ffn_prof.log 2>&1
echo "profile rc=$?"; grep -v '^{' $OUT/ffn_prof.log | grep -v Warn | tail -n 4
timeout ${BENCH_TIMEOUT:-330} elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants lowrank-attn elas-masked-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"; grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 6
