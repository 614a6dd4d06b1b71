#!/usr/bin/env bash
# GPU call: the RoPE sin/cos table pass (passes/trig_tables.py) on the device: its GPU test (Triton
# code computes sin once instead of per layer), SDPA backends at the preset shapes (bench_sdpa.py),
# then `elas-compile bench` at 350m under CUDA graphs (every variant gets the pass).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 90 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_trig_tables.py > $OUT/t_trig.log 2>&1
echo "trig tests rc=$?"; grep -E "passed|failed|Error" $OUT/t_trig.log | tail -n 4
timeout 60 python3 benchmarks/bench_sdpa.py --csv $OUT/sdpa.csv > $OUT/sdpa.log 2>&1
echo "sdpa rc=$?"; tail -n 10 $OUT/sdpa.log
timeout 380 elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants lowrank-attn elas-masked-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"; grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 6
