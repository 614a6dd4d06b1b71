"""Benchmark of the fused relu² + 2:4 + cuSPARSELt-compress kernel and its backward kernels.

For each M x F (bf16): median time (triton.testing.do_bench) of
  fwd        elas fused forward (relu² -> 2:4 -> compressed buffer)
  bwd_mask   dense dy1 from dS and the packed buffer (masked, no y)
  bwd_mask_s the same pass also writing the dense S (replaces bwd_mask + decomp in the FFN)
  bwd_cmp    masked dy1 written in the compressed layout
  bwd_ste    dense dy1 = 2 dS relu(y)
  decomp     packed -> dense pruned S
  torch      torch's path: relu(y)**2 then SparseSemiStructuredTensorCUSPARSELT.prune_dense_static_sort
             (which also writes the transposed operand; ``torch_prune`` is the prune alone)
and, with the rank-r GEMMs that surround them in the ELAS FFN (r = --rank, default 512):
  up_fused   y = h @ U^T with relu² + 2:4 + compress in the GEMM epilogue (triton_lowrank_gemm)
  up_split   the same as cuBLAS h @ U^T then the fwd kernel
  grad_fused dS = g @ V with the masked backward in the GEMM epilogue
  grad_split cuBLAS g @ V then the bwd_mask kernel
  dv_fused   g^T @ S with S expanded from the compressed operand inside the GEMM
  dv_split   the decomp kernel then cuBLAS g^T @ S
and each kernel's memory floor: bytes that must be read and written / device copy bandwidth
(measured in the same run: a 1 GiB device-to-device copy, counting read + write).

    python benchmarks/bench_sparsify.py [--csv PATH] [--shapes 16384x8192,...] [--sweep]

``--sweep`` times every (BLOCK_M, BLOCK_F, num_warps) configuration of each kernel at the first
shape and uses the fastest per kernel for the table (else the code defaults).
Prints a table last and writes a CSV (default benchmarks/results/bench_sparsify.csv).
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
import triton
from triton.testing import do_bench

from elas_compile.kernels import triton_dv_gemm as DV
from elas_compile.kernels import triton_lowrank_gemm as GEMM
from elas_compile.kernels import triton_sparse24_backward as B
from elas_compile.kernels.triton.relu2_sparsify import relu2_sparsify24_compress

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import device_meta, write_csv  # noqa: E402

DEFAULT_SHAPES = [(16384, 8192), (32768, 11008), (8192, 4096)]
KERNELS = ["fwd", "bwd_mask", "bwd_mask_s", "bwd_cmp", "bwd_ste", "decomp"]
GEMMS = ["up_fused", "up_split", "grad_fused", "grad_split", "dv_fused", "dv_split"]


def bench(fn) -> float:
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def copy_bandwidth() -> float:
    src = torch.empty(2**29, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    t = bench(lambda: dst.copy_(src))
    return 2 * src.numel() * 2 / (t * 1e-3)  # bytes/s, read + write


def kernels(y, g, p, m, f, cfg=None, which=None, best=None):
    if best:  # per-kernel configurations from a sweep
        return {k: kernels(y, g, p, m, f, best.get(k), [k])[k] for k in (which or KERNELS)}
    ks = {
        "fwd": (lambda: relu2_sparsify24_compress(y, config=cfg), (2 + 9 / 8) * m * f),
        "bwd_mask": (lambda: B.relu2_sparsify24_backward(g, p, None, "masked", m, f, config=cfg), (2 + 9 / 8 + 2) * m * f),
        "bwd_mask_s": (lambda: B.relu2_sparsify24_backward(g, p, None, "masked", m, f, config=cfg, write_s=True),
                       (2 + 9 / 8 + 4) * m * f),
        "bwd_cmp": (lambda: B.relu2_sparsify24_backward_compressed(g, p, m, f, config=cfg), (2 + 9 / 8 + 9 / 8) * m * f),
        "bwd_ste": (lambda: B.relu2_sparsify24_backward(g, p, y, "ste", m, f, config=cfg), 6.0 * m * f),
        "decomp": (lambda: B.sparse24_decompress(p, m, f, config=cfg), (9 / 8 + 2) * m * f),
    }
    return {k: v for k, v in ks.items() if which is None or k in which}


def gemms(m, f, r, cfg=None, which=None, best=None):
    """The rank-r GEMMs with the 2:4 work fused in, and cuBLAS + the separate kernel."""
    if best:
        return {k: gemms(m, f, r, best.get(k), [k])[k] for k in (which or GEMMS)}
    h = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    u = torch.randn(f, r, device="cuda", dtype=torch.bfloat16) / r**0.5
    p = relu2_sparsify24_compress(h @ u.t())
    g = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(r, f, device="cuda", dtype=torch.bfloat16) / r**0.5
    ks = {
        "up_fused": lambda: GEMM.up_relu2_compress(h, u, config=cfg),
        "up_split": lambda: relu2_sparsify24_compress(h @ u.t()),
        "grad_fused": lambda: GEMM.grad_relu2_sparse24(g, v, p, None, "masked", config=cfg),
        "grad_split": lambda: B.relu2_sparsify24_backward(g @ v, p, None, "masked", m, f),
        "dv_fused": lambda: DV.dv_sparse24(g, p, m, f, config=cfg),
        "dv_split": lambda: g.t() @ B.sparse24_decompress(p, m, f),
    }
    return {k: v_ for k, v_ in ks.items() if which is None or k in which}


def sweep(bw: float, m: int, f: int, r: int) -> dict:
    """Time every configuration of every kernel at m x f; returns the fastest per kernel."""
    from elas_compile.kernels.triton.relu2_sparsify import SWEEP_CONFIGS as FWD_SWEEP

    y = torch.randn(m, f, device="cuda", dtype=torch.bfloat16)
    g = torch.randn_like(y)
    p = relu2_sparsify24_compress(y)
    print(f"sweep {m}x{f}: copy bw {bw / 1e12:.2f} TB/s", flush=True)
    best: dict = {}
    plan = [("fwd", FWD_SWEEP)] + [(k, B.SWEEP_CONFIGS) for k in ("bwd_mask", "bwd_mask_s", "bwd_cmp", "bwd_ste", "decomp")]
    for name, cfgs in plan:
        for cfg in cfgs:
            (fn, nbytes), = kernels(y, g, p, m, f, cfg, [name]).values()
            t = bench(fn)
            print(f"  {name:8s} {str(cfg):14s} {t * 1e3:8.1f} us  x{t / (nbytes / bw * 1e3):.2f} floor", flush=True)
            if name not in best or t < best[name][1]:
                best[name] = (cfg, t)
    for name, cfgs in (("up_fused", GEMM.SWEEP_CONFIGS), ("grad_fused", GEMM.SWEEP_CONFIGS),
                       ("dv_fused", DV.SWEEP_CONFIGS)):
        for cfg in cfgs:
            (fn,) = gemms(m, f, r, cfg, [name]).values()
            try:
                t = bench(fn)
            except Exception as e:  # e.g. out of shared memory for a large tile
                print(f"  {name:8s} {str(cfg):14s} failed: {type(e).__name__}", flush=True)
                continue
            print(f"  {name:8s} {str(cfg):14s} {t * 1e3:8.1f} us  {2 * m * f * r / t / 1e9:6.0f} TFLOP/s", flush=True)
            if name not in best or t < best[name][1]:
                best[name] = (cfg, t)
    cfg = best["fwd"][0]
    t = bench(lambda: relu2_sparsify24_compress(y, config=cfg, hw_cvt=False))
    print(f"  fwd {cfg} integer rounding instead of cvt: {t * 1e3:8.1f} us", flush=True)
    print("best:", {k: v[0] for k, v in best.items()}, flush=True)
    return {k: v[0] for k, v in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=os.path.join(os.path.dirname(__file__), "results", "bench_sparsify.csv"))
    ap.add_argument("--shapes", default=",".join(f"{m}x{f}" for m, f in DEFAULT_SHAPES))
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--rank", type=int, default=512, help="r of the GEMM rows (default 512)")
    args = ap.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    torch.manual_seed(0)
    bw = copy_bandwidth()
    best = sweep(bw, *shapes[0], args.rank) if args.sweep else None
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as CSLT

    rows = []
    for m, f in shapes:
        y = torch.randn(m, f, device="cuda", dtype=torch.bfloat16)
        g = torch.randn_like(y)
        p = relu2_sparsify24_compress(y)
        row = {"M": m, "F": f}
        for name, (fn, nbytes) in kernels(y, g, p, m, f, best=best).items():
            t = bench(fn)
            row[f"{name}_ms"] = t
            row[f"{name}_floor_ms"] = nbytes / bw * 1e3
        for name, fn in gemms(m, f, args.rank, best=best).items():
            row[f"{name}_ms"] = bench(fn)
        r2 = torch.relu(y) ** 2
        row["torch_ms"] = bench(lambda: CSLT.prune_dense_static_sort(torch.relu(y) ** 2))
        row["torch_prune_ms"] = bench(lambda: CSLT.prune_dense_static_sort(r2))
        rows.append(row)
        del y, g, p, r2
        torch.cuda.empty_cache()
    meta = device_meta(triton=triton.__version__, copy_TBps=round(bw / 1e12, 3),
                       configs="swept" if best else "defaults")
    write_csv(args.csv, rows, meta)
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    names = KERNELS
    if best:
        print("configs (BLOCK_M, BLOCK_F, num_warps):", best)
    hdr = f"{'M x F':>13} | " + " | ".join(f"{n:>17}" for n in names) + " | torch (prune only) | fwd speedup"
    print("times in ms, (x over memory floor)")
    print(hdr)
    for r in rows:
        cells = [f"{r[n + '_ms']:.3f} (x{r[n + '_ms'] / r[n + '_floor_ms']:.2f})" for n in names]
        print(
            f"{r['M']:>6}x{r['F']:<6} | " + " | ".join(f"{c:>17}" for c in cells)
            + f" | {r['torch_ms']:.3f} ({r['torch_prune_ms']:.3f}) | {r['torch_ms'] / r['fwd_ms']:.2f}x"
        )
    print(f"rank-{args.rank} GEMMs with the 2:4 work (ms): fused epilogue vs cuBLAS + separate kernel")
    for r in rows:
        print(f"{r['M']:>6}x{r['F']:<6} | up {r['up_fused_ms']:.3f} vs {r['up_split_ms']:.3f}"
              f" | grad {r['grad_fused_ms']:.3f} vs {r['grad_split_ms']:.3f}"
              f" | dV {r['dv_fused_ms']:.3f} vs {r['dv_split_ms']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
