#!/usr/bin/env bash
# GPU call: the rest of session 59 (cut by its time limit after three variants): ELAS masked in
# CoLA form and full rank at 350m under CUDA graphs; the RoPE pass's GPU test beside it (compiles
# on the CPU cores while the bench replays CUDA graphs).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
(timeout 400 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_trig_tables.py > $OUT/t_trig.log 2>&1; echo "trig tests rc=$?" >> $OUT/t_trig.log) &
timeout 480 elas-compile bench --preset llama-350m --compile-mode reduce-overhead --variants \
  elas-masked-cola-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"; wait
grep -E "passed|failed|^E|rc=" $OUT/t_trig.log | tail -n 4
grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 5
