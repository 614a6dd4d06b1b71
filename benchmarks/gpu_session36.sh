#!/usr/bin/env bash
# GPU call: the CUTLASS backward kernel with its compressed-S loads in registers (session 35: the
# loads cost 0.55 ms, serialized through local memory), kernel tests and benchmark, the FFN table
# with ELAS_CUTLASS=0 / auto (up kernel) / 1 (both), and the 350m training step (auto).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 100 python3 -m pytest -q --tb=short -p no:cacheprovider tests/kernels/test_cutlass_gpu.py > $OUT/t_cutlass.log 2>&1
echo "kernel tests rc=$?"; grep -E "passed|failed|FAILED|Error" $OUT/t_cutlass.log | tail -n 8
timeout 80 python3 benchmarks/bench_cutlass.py --shapes 16384x8192x512,16384x4096x256 --csv $OUT/bench_cutlass.csv > $OUT/bench.log 2>&1
tail -n 3 $OUT/bench.log
timeout 200 python3 benchmarks/bench_ffn.py --modes reduce-overhead \
  --only swiglu_fullrank,lowrank_relu2_dense,elas_masked_triton,elas_masked,elas_masked_cutlass \
  --csv $OUT/ffn_ro.csv > $OUT/ffn_ro.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn_ro.log | grep -v Warn | tail -n 11
timeout ${BENCH_TIMEOUT:-330} elas-compile bench --preset llama-350m --compile-mode reduce-overhead \
  --variants lowrank-attn elas-masked-attn full --steps 10 --warmup 3 --out $OUT/bench > $OUT/train_bench.log 2>&1
echo "train bench rc=$?"; grep -v Warning $OUT/train_bench.log | grep -v "warn" | tail -n 6
