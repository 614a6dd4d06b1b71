"""The rank-r GEMMs of the ELAS FFN with the 2:4 work in the epilogue: persistent TMA kernels
(``triton_tma_gemm``) against cuBLAS + the separate kernel, and the earlier pointer kernels.

    python benchmarks/bench_tma_gemm.py [--shapes 16384x8192x512,16384x4096x256] [--csv PATH]

Rows (ms, median of triton.testing.do_bench), per M x F x r, bf16:
  up_cublas    y = h @ U^T alone (cuBLAS)                up_split  the same + the compress kernel
  up_ptr       the pointer-based fused kernel            up_plain  the TMA kernel storing y only
  up_tma       the TMA kernel with relu² + 2:4 + compress in its epilogue
  grad_cublas  dS = g @ V alone                          grad_split_s  + the dy/S pass (what the FFN runs)
  grad_ptr     pointer-based fused, dy only              grad_tma  TMA fused, dy only
  grad_tma_s   TMA fused writing dy and the dense S (replaces grad_split_s)
The TMA rows take the fastest of ``SWEEP_CONFIGS`` at each shape (printed, with its TFLOP/s);
results of the fused kernels are checked against the split path. Prints a table, writes a CSV.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

try:
    import elas_compile.kernels  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import triton
from triton.testing import do_bench

from elas_compile.kernels import cslt_layout as L
from elas_compile.kernels import triton_lowrank_gemm as P
from elas_compile.kernels import triton_sparse24_backward as B
from elas_compile.kernels import triton_tma_gemm as T
from elas_compile.kernels.triton_relu2_sparsify import relu2_sparsify24_compress

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import device_meta, write_csv  # noqa: E402

SHAPES = "16384x8192x512,16384x4096x256"


def bench(fn) -> float:
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def rel(x, ref) -> float:
    return ((x.float() - ref.float()).norm() / ref.float().norm()).item()


def fastest(name, make, flops, budget_s):
    """(best config, ms) of ``make(cfg)`` over the sweep; stops early when out of time."""
    best, t0 = (None, float("inf")), time.time()
    for cfg in T.SWEEP_CONFIGS:
        if time.time() - t0 > budget_s:
            print(f"  {name}: sweep budget spent", flush=True)
            break
        try:
            t = bench(make(cfg))
        except Exception as e:  # e.g. out of shared memory for a large tile
            print(f"  {name:10s} {str(cfg):30s} failed: {type(e).__name__}: {str(e)[:120]}", flush=True)
            continue
        print(f"  {name:10s} {str(cfg):30s} {t * 1e3:8.1f} us {flops / t / 1e9:6.0f} TFLOP/s", flush=True)
        if t < best[1]:
            best = (cfg, t)
    return best


def one_shape(m, f, r, budget_s):
    h = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    u = torch.randn(f, r, device="cuda", dtype=torch.bfloat16) / r**0.5
    g = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(r, f, device="cuda", dtype=torch.bfloat16) / r**0.5
    p = relu2_sparsify24_compress(h @ u.t())
    flops = 2 * m * f * r
    row = {"M": m, "F": f, "r": r}
    row["up_cublas"] = bench(lambda: h @ u.t())
    row["up_split"] = bench(lambda: relu2_sparsify24_compress(h @ u.t()))
    row["up_ptr"] = bench(lambda: P.up_relu2_compress(h, u))
    cfg, row["up_plain"] = fastest("up_plain", lambda c: lambda: T.up_relu2_compress_tma(
        h, u, write_y=True, compress=False, config=c), flops, budget_s)
    cfg, row["up_tma"] = fastest("up_tma", lambda c: lambda: T.up_relu2_compress_tma(h, u, config=c), flops, budget_s)
    row["up_tma_cfg"] = str(cfg)
    if cfg is not None:
        packed, _ = T.up_relu2_compress_tma(h, u, config=cfg)
        row["up_tma_relerr"] = rel(L.decompress24_reference(packed, m, f), L.decompress24_reference(p, m, f))
    row["grad_cublas"] = bench(lambda: g @ v)
    row["grad_split_s"] = bench(lambda: B.relu2_sparsify24_backward(g @ v, p, None, "masked", m, f, write_s=True))
    row["grad_ptr"] = bench(lambda: P.grad_relu2_sparse24(g, v, p, None, "masked"))
    cfg, row["grad_tma_s"] = fastest("grad_tma_s", lambda c: lambda: T.grad_relu2_tma(
        g, v, p, None, "masked", write_s=True, config=c), flops, budget_s)
    row["grad_tma_cfg"] = str(cfg)
    if cfg is not None:
        row["grad_tma"] = bench(lambda: T.grad_relu2_tma(g, v, p, None, "masked", config=cfg))
        dy, s = T.grad_relu2_tma(g, v, p, None, "masked", write_s=True, config=cfg)
        ref_dy, ref_s = B.relu2_sparsify24_backward(g @ v, p, None, "masked", m, f, write_s=True)
        row["grad_tma_relerr"] = rel(dy, ref_dy)
        row["grad_tma_s_exact"] = bool(torch.equal(s, ref_s))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--sweep-budget", type=float, default=60.0, help="seconds per sweep")
    ap.add_argument("--csv", default=os.path.join(os.path.dirname(__file__), "results", "bench_tma_gemm.csv"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for s in args.shapes.split(","):
        m, f, r = (int(v) for v in s.split("x"))
        print(f"{m}x{f}x{r}:", flush=True)
        rows.append(one_shape(m, f, r, args.sweep_budget))
    meta = device_meta(triton=triton.__version__)
    write_csv(args.csv, rows, meta)
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    cols = ["up_cublas", "up_split", "up_ptr", "up_plain", "up_tma", "grad_cublas", "grad_split_s", "grad_ptr",
            "grad_tma", "grad_tma_s"]
    print(f"{'M x F x r':>18} | " + " | ".join(f"{c:>12}" for c in cols) + "   (ms)")
    for r_ in rows:
        cells = [f"{r_[c]:.3f}" if isinstance(r_.get(c), float) else "-" for c in cols]
        print(f"{r_['M']:>7}x{r_['F']}x{r_['r']:<4} | " + " | ".join(f"{c:>12}" for c in cells))
        print(f"{'':>18}   best up {r_.get('up_tma_cfg')} (rel err {r_.get('up_tma_relerr', float('nan')):.1e}),"
              f" grad {r_.get('grad_tma_cfg')} (rel err {r_.get('grad_tma_relerr', float('nan')):.1e},"
              f" S exact {r_.get('grad_tma_s_exact')})")


if __name__ == "__main__":
    main()
