#!/usr/bin/env bash
# GPU call: the final kernels (both with 64 x 64 subtiles): a second sample of issue 4's d = 2048
# table in graph and reduce-overhead modes (session 51: 1.10x / 1.11x, margins inside the
# machine-to-machine spread), then the 350m training step (every linear low rank).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 200 python3 benchmarks/bench_ffn.py --modes graph,reduce-overhead --shapes 2048 \
  --only swiglu_fullrank,lowrank_relu2_dense,elas_masked --csv $OUT/ffn.csv > $OUT/ffn.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn.log | grep -v Warn | tail -n 7
timeout 330 elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants lowrank-attn elas-masked-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"; grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 6
