#!/usr/bin/env bash
# GPU call (eleventh session): where the CUTLASS grad kernel's warps wait (Nsight Compute stall
# samples, 350m's FFN shape): are the epilogue's global stores throttled (lg_throttle), which
# asynchronous (TMA / bulk) stores from shared memory would take off the warps?
. benchmarks/gpu_common.sh
gpu_setup || exit 1
cat > /tmp/prof_grad.py <<'PY'
import torch
from elas_compile.kernels import cutlass_ext  # noqa: F401
t, f, r = 16384, 4096, 256
h = torch.randn(t, r, device="cuda").bfloat16()
u = (torch.randn(f, r, device="cuda") / r**0.5).bfloat16()
packed = torch.ops.elas.cutlass_up_relu2_sparse24(h, u)
g = torch.randn(t, r, device="cuda").bfloat16()
w = u.t().contiguous()
for _ in range(3):
    torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed)
    torch.ops.elas.cutlass_up_relu2_sparse24(h, u)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStart()
torch.ops.elas.cutlass_up_relu2_sparse24(h, u)
torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
PY
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 240 $NCU --profile-from-start off --clock-control none --set full --import-source no \
  -o $OUT/prof python3 /tmp/prof_grad.py > $OUT/ncu_run.log 2>&1
echo "ncu rc=$?"
$NCU -i $OUT/prof.ncu-rep --page details > $OUT/ncu_details.txt 2>&1
$NCU -i $OUT/prof.ncu-rep --page raw --csv --metrics regex:smsp__pcsamp_warps_issue_stalled_.*,regex:smsp__average_warp_latency_issue_stalled_.* > $OUT/ncu_stalls.csv 2>&1
rm -f $OUT/prof.ncu-rep
grep -E "Duration|DRAM Throughput|L2 Cache Throughput|Issue Slots Busy|Eligible Warps|Warp Cycles Per Issued" $OUT/ncu_details.txt | cut -c1-110 | head -n 20
python3 - "$OUT/ncu_stalls.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head = next(i for i, r in enumerate(rows) if r and r[0] == "ID")
names, data = rows[head], rows[head + 2:]
for r in data:
    samp = {n.replace("smsp__pcsamp_warps_issue_stalled_", ""): float(v.replace(",", "") or 0)
            for n, v in zip(names, r) if n.startswith("smsp__pcsamp_warps_issue_stalled_") and not n.endswith("not_issued")}
    tot = sum(samp.values()) or 1
    top = sorted(samp.items(), key=lambda kv: -kv[1])[:9]
    print(r[names.index("Kernel Name")][:40] if "Kernel Name" in names else r[0], " ".join(f"{k}:{v / tot:.0%}" for k, v in top))
PY
cd "$OUT" && tar czf s92.tgz --remove-files -- *
