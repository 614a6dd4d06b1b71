"""Benchmark: the down projection's weight gradient dV = g^T S with and without a dense S.

For each tokens x F x r (bf16, the ELAS FFN's backward), median ms per call under a CUDA graph of
  grad_cutlass     the CUTLASS dS kernel writing dy and the dense S (what the FFN runs now)
  grad_dy          the same kernel writing dy only
  cublas_dv        g^T @ S on the dense S (cuBLAS)
  triton_dv[cfg]   g^T @ S from the compressed S (kernels/triton_dv_gemm.py), every config of the sweep
and the two paths' sums: now = grad_cutlass + cublas_dv, compressed = grad_dy + best triton_dv.
Each Triton result is checked against cuBLAS's (relative error printed).

    python benchmarks/bench_dv.py [--csv PATH] [--shapes 16384x4096x256,...]

Needs an sm_90 GPU and the CUTLASS library. Prints a table last and writes a CSV.
"""
from __future__ import annotations

import os
import sys

import torch

try:  # installed (python3 -m pip install -e .), else run from a checkout
    import elas_compile.kernels  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from elas_compile.kernels import cutlass_ext  # noqa: F401  (registers elas::cutlass_*)
from elas_compile.kernels import triton_dv_gemm as D

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cutlass_shapes_cli, device_meta, ffn_operands, graph_ms, write_csv  # noqa: E402

DEFAULT_SHAPES = [(16384, 4096, 256), (16384, 8192, 512)]


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.float() - ref.float()).norm() / ref.float().norm())


def run_shape(t: int, f: int, r: int) -> list[dict]:
    _, _, packed, g, w = ffn_operands(t, f, r)
    _, s = torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed)
    ref = g.t() @ s
    flop = 2 * t * f * r
    rows = []

    def row(name, fn, out=None):
        ms = graph_ms(fn)
        rows.append({"t": t, "f": f, "r": r, "kernel": name, "ms": ms, "tflops": flop / ms / 1e9,
                     "rel_err": _rel(out, ref) if out is not None else ""})
        return ms

    row("grad_cutlass", lambda: torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed))
    row("grad_dy", lambda: torch.ops.elas.cutlass_grad_relu2_sparse24_dy(g, w, packed))
    row("cublas_dv", lambda: g.t() @ s, ref)
    for cfg in D.SWEEP_CONFIGS:
        fn = lambda cfg=cfg: D.dv_sparse24(g, packed, t, f, config=cfg)  # noqa: E731
        try:
            row("triton_dv" + "_".join(map(str, cfg)), fn, fn())
        except Exception as e:  # a config that does not compile (shared memory): say so, go on
            print(f"triton_dv {cfg}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    by = {x["kernel"]: x["ms"] for x in rows}
    best = min((x for x in rows if x["kernel"].startswith("triton_dv")), key=lambda x: x["ms"])
    rows.append({"t": t, "f": f, "r": r, "kernel": "now=grad_cutlass+cublas_dv",
                 "ms": by["grad_cutlass"] + by["cublas_dv"]})
    rows.append({"t": t, "f": f, "r": r, "kernel": f"compressed=grad_dy+{best['kernel']}",
                 "ms": by["grad_dy"] + best["ms"]})
    return rows


def main(argv=None) -> None:
    csv_path, shapes = cutlass_shapes_cli("bench_dv", __doc__, DEFAULT_SHAPES, argv)
    rows = [x for s in shapes for x in run_shape(*s)]
    write_csv(csv_path, rows, device_meta())
    print(f"{'T x F x r':>18} {'kernel':>40} {'ms':>8} {'TFLOP/s':>8} {'rel err':>9}")
    for x in rows:
        tf = f"{x['tflops']:8.0f}" if "tflops" in x else " " * 8
        err = f"{x['rel_err']:9.2e}" if x.get("rel_err", "") != "" else ""
        print(f"{x['t']}x{x['f']}x{x['r']:<6} {x['kernel']:>40} {x['ms']:8.4f} {tf} {err}")


if __name__ == "__main__":
    main()
