"""One call of each GEMM the ``kernels`` suite times (cuBLAS alone, split, CUTLASS; up and grad),
bracketed for Nsight Compute.

    ncu --profile-from-start off --clock-control none --set full -o REPORT \\
        python -m tools.profile_cutlass [--shape 16384x8192x512]

Shape: tokens M x FFN width F x rank r. Warms every kernel up first (autotuning, plan choice,
library load), then runs each once between cudaProfilerStart and Stop. Nothing is timed here:
ncu measures.
"""
from __future__ import annotations

import argparse

import torch

import elas_compile  # noqa: F401  (registers torch.ops.elas)
from benchmarks.suites.kernels import gemm_ops

PROFILED = ("up_gemm", "grad_gemm")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="16384x8192x512", help="M x F x r")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("profile_cutlass: needs a CUDA GPU")
    ops, missing = gemm_ops(*map(int, args.shape.split("x")))
    if missing:
        raise SystemExit(f"profile_cutlass: {missing}")
    calls = [fn for op, _, fn in ops if op in PROFILED]
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
