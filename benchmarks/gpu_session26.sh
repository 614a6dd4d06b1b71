#!/usr/bin/env bash
# GPU call (sessions 26-30): the CUTLASS probe (benchmarks/cutlass_probe.cu, built on the CPU machine with nvcc 13.0,
# carried in .probe/) beside torch's cuBLAS product at the same shape and layout.
export PYTHONUNBUFFERED=1
timeout 120 ./.probe/cutlass_probe 2>&1 | tee $OUT/probe.log
python3 - <<'PY' 2>&1 | tee -a $OUT/probe.log
import torch
from triton.testing import do_bench
h = torch.randn(16384, 512, device="cuda", dtype=torch.bfloat16)
u = torch.randn(8192, 512, device="cuda", dtype=torch.bfloat16)
ms = do_bench(lambda: h @ u.t(), warmup=50, rep=300)
ms2 = do_bench(lambda: torch.relu(h @ u.t()) ** 2, warmup=50, rep=300)
print(f"torch cuBLAS h @ U^T                {ms:8.4f} ms {2*16384*8192*512/ms/1e9:6.0f} TFLOP/s")
print(f"torch cuBLAS + relu^2 (eager, 2 ops) {ms2:8.4f} ms")
PY
