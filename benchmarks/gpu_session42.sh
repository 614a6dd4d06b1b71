#!/usr/bin/env bash
# GPU call: both CUTLASS kernels in ELAS_CUTLASS=auto (the grad kernel 1.56x its split path since
# session 41): the FFN op's GPU tests, then issue 4's FFN table (CUDA graphs) with the Triton-only
# and up-kernel-only variants beside the default.
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 200 python3 -m pytest -q --tb=short -p no:cacheprovider tests/test_fused_ffn_gpu.py -k "not max-autotune" \
  > $OUT/t_ffn_auto.log 2>&1
echo "ffn tests (auto) rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_ffn_auto.log | tail -n 8
timeout 330 python3 benchmarks/bench_ffn.py --modes reduce-overhead \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_masked_cutlass_up,elas_masked_triton,elas_ste \
  --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn_ro.log | grep -v Warn | tail -n 16
