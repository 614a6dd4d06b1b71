#!/usr/bin/env bash
# GPU call (tenth session): why the Triton dV = g^T S from the compressed S runs at 213 TFLOP/s:
# Nsight Compute on one call at 350m's FFN shape (16384 x 4096 x 256, best config).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
cat > /tmp/prof_dv.py <<'PY'
import torch
from elas_compile.kernels import cutlass_ext  # noqa: F401
from elas_compile.kernels.triton_dv_gemm import dv_sparse24
t, f, r = 16384, 4096, 256
h = torch.randn(t, r, device="cuda").bfloat16()
u = (torch.randn(f, r, device="cuda") / r**0.5).bfloat16()
packed = torch.ops.elas.cutlass_up_relu2_sparse24(h, u)
g = torch.randn(t, r, device="cuda").bfloat16()
for _ in range(3):
    dv_sparse24(g, packed, t, f)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStart()
dv_sparse24(g, packed, t, f)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
PY
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 240 $NCU --profile-from-start off --clock-control none --set full --import-source no -k regex:dv_sparse24 \
  -o $OUT/prof python3 /tmp/prof_dv.py > $OUT/ncu_run.log 2>&1
echo "ncu rc=$?"
$NCU -i $OUT/prof.ncu-rep --page details > $OUT/ncu_dv_details.txt 2>&1
$NCU -i $OUT/prof.ncu-rep --page raw --csv --metrics regex:smsp__pcsamp_warps_issue_stalled_.*,regex:smsp__average_warp_latency_issue_stalled_.* > $OUT/ncu_dv_stalls.csv 2>&1
rm -f $OUT/prof.ncu-rep
grep -E "Duration|DRAM Throughput|L1/TEX Cache Throughput|L2 Cache Throughput|Compute \(SM\) Throughput|Issue Slots Busy|Eligible Warps|Active Warps Per|Warp Cycles Per Issued|Registers Per|Achieved Occupancy|Shared Memory Configuration|Dynamic Shared|Executed Ipc|Block Limit" $OUT/ncu_dv_details.txt | cut -c1-110 | head -n 30
grep -iE "stall|bottleneck|bank" $OUT/ncu_dv_details.txt | cut -c1-220 | head -n 14
