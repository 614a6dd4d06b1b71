"""The ELAS FFN's large cuBLAS GEMMs in every operand / result layout the op could use.

    python -m tools.gemm_layouts [--shapes 16384x8192x512,16384x4096x256] [--csv PATH]

Shape T x F x r (tokens, FFN width, rank). cuBLAS picks its kernel by the operands' layouts, and
the same product can run as C = A B or as C^T = B^T A^T (the result then lies transposed in
memory), or on a transposed copy of a weight factor (8 MiB at the 1B shape, the copy is timed
with it). Every candidate's result is checked against the first one. Times: median of CUDA-graph
replays (no host cost). Prints, per GEMM, each candidate's ms and TFLOP/s; writes every row.

GEMMs (h: T x r, Wu: F x r up factor, Vd: r x F down factor, g: T x r, dy and S: T x F):
  up  y  = h @ Wu^T    (T x F; the 2:4 pass reads it by rows: row-major result only)
  dS     = g @ Vd      (T x F; row-major result only)
  dV     = g^T @ S     (r x F; a parameter's gradient)
  dh     = dy @ Wu     (T x r)
  dU     = dy^T @ h    (F x r; a parameter's gradient)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.outputs import write_csv
from benchmarks.timing import graph_ms


def candidates(t: torch.Tensor) -> dict:
    """name -> {candidate: zero-argument fn returning the product} for the tensors in ``t``."""
    h, g, wu, vd, dy, s = (t[k] for k in ("h", "g", "wu", "vd", "dy", "s"))
    return {
        "up": {
            "h @ Wu.t()": lambda: h @ wu.t(),
            "h @ Wu.t().contiguous()": lambda: h @ wu.t().contiguous(),
        },
        "dS": {
            "g @ Vd": lambda: g @ vd,
            "g @ Vd.t().contiguous().t()": lambda: g @ vd.t().contiguous().t(),
        },
        "dV": {
            "g.t() @ S": lambda: g.t() @ s,
            "(S.t() @ g).t()": lambda: (s.t() @ g).t(),
            "g.t().contiguous() @ S": lambda: g.t().contiguous() @ s,
            "(S.t() @ g).t().contiguous()": lambda: (s.t() @ g).t().contiguous(),
        },
        "dh": {
            "dy @ Wu": lambda: dy @ wu,
            "(Wu.t() @ dy.t()).t()": lambda: (wu.t() @ dy.t()).t(),
            "dy @ Wu.t().contiguous().t()": lambda: dy @ wu.t().contiguous().t(),
            "(Wu.t().contiguous() @ dy.t()).t()": lambda: (wu.t().contiguous() @ dy.t()).t(),
        },
        "dU": {
            "dy.t() @ h": lambda: dy.t() @ h,
            "(h.t() @ dy).t()": lambda: (h.t() @ dy).t(),
            "(h.t() @ dy).t().contiguous()": lambda: (h.t() @ dy).t().contiguous(),
            "dy.t() @ h.t().contiguous().t()": lambda: dy.t() @ h.t().contiguous().t(),
        },
    }


def one_shape(tok: int, f: int, r: int, blas: str) -> list[dict]:
    kw = {"device": "cuda", "dtype": torch.bfloat16}
    t = {"h": torch.randn(tok, r, **kw), "g": torch.randn(tok, r, **kw), "wu": torch.randn(f, r, **kw) / 8,
         "vd": torch.randn(r, f, **kw) / 8, "dy": torch.randn(tok, f, **kw), "s": torch.randn(tok, f, **kw)}
    flop = 2 * tok * f * r
    rows = []
    for gemm, cands in candidates(t).items():
        ref = None
        for name, fn in cands.items():
            out = fn().float()
            ref = out if ref is None else ref
            err = ((out - ref).norm() / ref.norm()).item()
            ms = graph_ms(fn)
            rows.append({"T": tok, "F": f, "r": r, "blas": blas, "gemm": gemm, "candidate": name, "ms": ms,
                         "tflops": flop / ms / 1e9, "rel_err_vs_first": err})
            print(f"  {gemm:3s} {name:38s} {ms:.4f} ms {flop / ms / 1e9:6.0f} TFLOP/s  err {err:.1e}", flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="16384x8192x512,16384x4096x256")
    ap.add_argument("--blas", default="cublas,cublaslt", help="torch.backends.cuda.preferred_blas_library values")
    ap.add_argument("--csv", default="gemm_layouts.csv")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gemm_layouts needs a CUDA GPU")
    torch.manual_seed(0)
    default_blas = str(torch.backends.cuda.preferred_blas_library())
    rows = []
    for blas in args.blas.split(","):
        torch.backends.cuda.preferred_blas_library(blas)
        for s in args.shapes.split(","):
            tok, f, r = (int(v) for v in s.split("x"))
            print(f"{tok}x{f}x{r} ({blas}):", flush=True)
            rows += one_shape(tok, f, r, blas)
    write_csv(Path(args.csv), rows, [])
    print(f"wrote {args.csv} ({torch.cuda.get_device_name()}, torch {torch.__version__}, default BLAS {default_blas})")
    print(f"\n{'T x F x r':>16} {'blas':9s} {'gemm':4s} {'fastest candidate':38s} {'ms':>7} {'first ms':>8} {'gain':>5}")
    for blas in args.blas.split(","):
        for s in args.shapes.split(","):
            tok, f, r = (int(v) for v in s.split("x"))
            for gemm in dict.fromkeys(x["gemm"] for x in rows):
                rs = [x for x in rows if x["gemm"] == gemm and x["blas"] == blas and (x["T"], x["F"], x["r"]) == (tok, f, r)]
                best = min(rs, key=lambda x: x["ms"])
                print(f"{s:>16} {blas:9s} {gemm:4s} {best['candidate']:38s} {best['ms']:7.4f} {rs[0]['ms']:8.4f} "
                      f"{rs[0]['ms'] / best['ms']:5.2f}x")


if __name__ == "__main__":
    main()
