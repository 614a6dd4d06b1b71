#!/usr/bin/env bash
# GPU call: `elas-compile bench` at 350m under CUDA graphs, every linear low rank, plain and CoLA
# form (the form that met the quality target, session 58), with the RoPE table pass and the loss
# in the graph; then the RoPE pass's GPU test on a compiled LLaMA.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 430 elas-compile bench --preset llama-350m --compile-mode reduce-overhead --variants lowrank-attn \
  elas-masked-attn lowrank-cola-attn elas-masked-cola-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"
timeout 120 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_trig_tables.py > $OUT/t_trig.log 2>&1
echo "trig tests rc=$?"; grep -E "passed|failed|^E" $OUT/t_trig.log | tail -n 4
grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 8
