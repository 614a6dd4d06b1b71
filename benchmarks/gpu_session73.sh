#!/usr/bin/env bash
# GPU call: why the grad kernel (lib_new2: register-only epilogue, loads before the MMA) runs at
# ~2.4 TB/s: Nsight Compute on both CUTLASS kernels at the 350m shape, and the H100's DRAM ceiling
# for the same traffic mix from plain copies (pure writes; 1 read : 1 write; 1 read : 4 writes).
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_new2.so" || exit 1
python3 - <<'PY'
import torch
def t(fn, n=20):
    fn(); torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n): fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / n * 1e3  # us
M, N = 16384, 4096
dense = torch.empty(M, N, dtype=torch.bfloat16, device="cuda")
two = torch.empty(2, M, N, dtype=torch.bfloat16, device="cuda")
src = torch.randn(M, N, device="cuda").bfloat16()
quarter = torch.randn(M, N // 4, device="cuda").bfloat16()
mb = lambda x: x.numel() * 2 / 1e6
for name, fn, nbytes in [
    ("write 2 x M x N (fill)", lambda: two.fill_(1.0), mb(two)),
    ("read M x N, write M x N (copy)", lambda: dense.copy_(src), 2 * mb(src)),
    ("read M x N/4, write M x N (row expand)", lambda: dense.view(M, 4, N // 4).copy_(quarter.view(M, 1, N // 4).expand(M, 4, N // 4)), mb(quarter) + mb(dense)),
]:
    us = t(fn)
    print(f"{name:40s} {us:8.1f} us  {nbytes / us / 1e3:5.2f} TB/s")
PY
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 200 $NCU --profile-from-start off --clock-control none --set full --import-source no -k regex:device_kernel \
  -o $OUT/prof python3 benchmarks/profile_cutlass.py --shape 16384x4096x256 > $OUT/ncu_run.log 2>&1
echo "ncu rc=$?"
$NCU -i $OUT/prof.ncu-rep --page details > $OUT/details.txt 2>&1
rm -f $OUT/prof.ncu-rep
grep -E "device_kernel|Duration|DRAM Throughput|Memory Throughput|L2 Cache Throughput|Issue Slots Busy|Eligible Warps|Warp Cycles Per Issued|Registers Per" $OUT/details.txt | cut -c1-110 | head -n 30
