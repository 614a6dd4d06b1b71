#!/usr/bin/env bash
# GPU call: issue 4's FFN table with --modes graph (the whole fwd+bwd step captured in one CUDA
# graph: GPU time, no host work between the forward's and backward's graphs; session 46's profile:
# the ELAS FFN's kernels add up to 1.81 ms against 1.97 ms reduce-overhead wall).
export PYTHONUNBUFFERED=1 ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || exit 1
timeout 450 python3 benchmarks/bench_ffn.py --modes graph \
  --only swiglu_fullrank,lowrank_relu2_dense,lowrank_relu2_torch24,elas_masked,elas_masked_cutlass_up,elas_masked_triton,elas_ste \
  --csv $OUT/ffn_graph.csv > $OUT/ffn_graph.log 2>&1
echo "ffn rc=$?"; grep -v '^{' $OUT/ffn_graph.log | grep -v Warn | tail -n 16
grep '"error"' $OUT/ffn_graph.log | cut -c1-300
