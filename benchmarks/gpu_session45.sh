#!/usr/bin/env bash
# GPU call: issue 4's FFN table (CUDA graphs) with the grad kernel's TMA loads (session 44), and a
# per-kernel profile of the ELAS and dense low-rank FFNs at d = 2048.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 200 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k fused_op \
  > $OUT/t_ffn_op.log 2>&1
echo "ffn op tests (auto) rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_op.log | tail -n 8
timeout 330 python3 benchmarks/bench_ffn.py --modes reduce-overhead \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_masked_cutlass_up,elas_masked_triton,elas_ste \
  --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn_ro.log | grep -v Warn | tail -n 16
timeout 150 python3 benchmarks/bench_ffn.py --modes reduce-overhead --shapes 2048 --only lowrank_relu2_dense,elas_masked \
  --profile $OUT/prof --csv $OUT/ffn_prof.csv > $OUT/ffn_prof.log 2>&1
echo "profile rc=$?"; ls $OUT/prof
