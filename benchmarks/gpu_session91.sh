#!/usr/bin/env bash
# GPU call (eleventh session): probe of a dV^T = S^T g Triton GEMM whose S^T tile is built element
# by element as the dot's first operand (so that wgmma may take it from registers: no shared-memory
# round trip), several tile configs, against cuBLAS on the dense S and kernels/triton_dv_gemm.py.
# The probe lives in the ignored .probe/dvA (carried); results in docs/kernels.md.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
timeout 400 python3 .probe/dvA/bench.py > "$OUT/rega.log" 2>&1
echo "rega rc=$?"; cat "$OUT/rega.log" | grep -v Warn | tail -n 30
cd "$OUT" && tar czf s91.tgz --remove-files -- *
