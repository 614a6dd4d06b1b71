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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cutlass import kernel_calls  # noqa: E402

PROFILED = ("cublas", "cutlass", "grad_cublas", "grad_split", "grad_cutlass")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="16384x8192x512")
    args = p.parse_args(argv)
    reason = C.unavailable_reason("cuda")
    if reason:
        raise SystemExit(f"profile_cutlass: {reason}")
    calls = kernel_calls(*map(int, args.shape.split("x")))
    calls = [calls[name] for name in PROFILED]
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
