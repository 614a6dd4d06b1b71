"""One call of each kernel bench_cutlass.py times, bracketed for Nsight Compute.

    ncu --profile-from-start off --clock-control none --set full -o REPORT \\
        python benchmarks/profile_cutlass.py [--shape 16384x8192x512]

Warms every kernel up first (autotuning, plan choice, library load), then runs, between
cudaProfilerStart and Stop: cuBLAS y = h U^T, the CUTLASS up kernel, cuBLAS dS = g W, the Triton
masked backward pass, the CUTLASS grad kernel. Nothing is timed here: ncu measures.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

try:  # installed (python3 -m pip install -e .), else run from a checkout
    import elas_compile.kernels  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from elas_compile.kernels import cutlass_ext as C
from elas_compile.kernels import triton_ops  # noqa: F401  (registers the Triton ops)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="16384x8192x512")
    args = p.parse_args(argv)
    reason = C.unavailable_reason("cuda")
    if reason:
        raise SystemExit(f"profile_cutlass: {reason}")
    m, n, k = map(int, args.shape.split("x"))
    h = torch.randn(m, k, device="cuda").bfloat16()
    w = (torch.randn(n, k, device="cuda") / k**0.5).bfloat16()
    g = torch.randn(m, k, device="cuda").bfloat16()
    wt = w.t().contiguous()
    packed = torch.ops.elas.cutlass_up_relu2_sparse24(h, w)
    calls = [
        lambda: h @ w.t(),
        lambda: torch.ops.elas.cutlass_up_relu2_sparse24(h, w),
        lambda: g @ wt,
        lambda: torch.ops.elas.relu2_sparsify24_backward_expand(g @ wt, packed, None, "masked", m, n),
        lambda: torch.ops.elas.cutlass_grad_relu2_sparse24(g, wt, packed),
    ]
    for fn in calls:
        fn(), fn()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    for fn in calls:
        fn()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
