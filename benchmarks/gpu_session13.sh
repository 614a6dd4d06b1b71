#!/usr/bin/env bash
# GPU call: the L2-blocked FFN (ELAS_ROW_BLOCK): tests against float64, then the FFN block at both
# shapes against dense low rank and the one-pass ELAS path (CUDA graphs), and a kernel profile.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
run() { local t0=$(date +%s); timeout "$@"; echo "[rc=$? $(( $(date +%s) - t0 ))s] ${*:2:3}"; }
run 120 python3 -m pytest -x --tb=short -q -p no:cacheprovider "tests/test_fused_ffn_gpu.py::test_fused_op_matches_float64" \
  > $OUT/t_block.log 2>&1
grep -E "Error|passed|failed" $OUT/t_block.log | head -n 5
V=lowrank_relu2_dense,elas_masked,elas_masked_block512,elas_masked_block1024,elas_masked_block2048
run 280 python3 benchmarks/bench_ffn.py --modes reduce-overhead --only $V --csv $OUT/ffn_block.csv > $OUT/ffn_block.log 2>&1
mkdir -p $OUT/prof
run 80 python3 benchmarks/bench_ffn.py --modes default --shapes 2048 --only elas_masked_block1024 --profile $OUT/prof \
  --csv $OUT/ffn_block_prof.csv > $OUT/ffn_block_prof.log 2>&1
grep -E '"error"' $OUT/ffn_block.log | cut -c1-400
tail -n 11 $OUT/ffn_block.log
