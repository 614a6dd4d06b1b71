"""Benchmark of the CUTLASS kernels with the ELAS 2:4 work in the GEMM epilogue.

For each M x N x K (bf16, y = h @ U^T at the ELAS FFN's up projection), median ms per call under a
CUDA graph (no host cost) of
  cublas      h @ U^T alone (what the dense low-rank FFN starts with)
  split       h @ U^T (cuBLAS) then the Triton relu² + 2:4 + compress kernel (the default path)
  cutlass     the CUTLASS GEMM with the 2:4 epilogue (kernels/cutlass/up_relu2_sparse24.cu)
and the speed-up of cutlass over split; for the backward (dS = g @ W, K x N = the transpose):
  grad_cublas g @ W alone
  grad_split  g @ W then the Triton masked dy + dense S pass (the default path)
  grad_cutlass the CUTLASS GEMM whose epilogue writes dy and S (grad_relu2_sparse24.cu)

    python benchmarks/bench_cutlass.py [--csv PATH] [--shapes 16384x8192x512,...]

Needs an sm_90 GPU and the library (python -m elas_compile.kernels.cutlass.build, or ELAS_CUTLASS_LIB).
Prints a table last and writes a CSV (default benchmarks/results/bench_cutlass.csv).
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
from elas_compile.kernels import triton_ops  # noqa: F401  (registers elas::relu2_sparsify24_compress)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cutlass_shapes_cli, device_meta, ffn_operands, graph_ms, write_csv  # noqa: E402

DEFAULT_SHAPES = [(16384, 8192, 512), (16384, 4096, 256), (16384, 11008, 512)]


def kernel_calls(m: int, n: int, k: int) -> dict:
    """The calls this benchmark times at one M x N x K, by column name (operands made once, on the
    GPU); benchmarks/profile_cutlass.py runs them under Nsight Compute."""
    h, w, packed, g, wt = ffn_operands(m, n, k)
    return {
        "cublas": lambda: h @ w.t(),
        "split": lambda: torch.ops.elas.relu2_sparsify24_compress(h @ w.t()),
        "cutlass": lambda: torch.ops.elas.cutlass_up_relu2_sparse24(h, w),
        "grad_cublas": lambda: g @ wt,
        "grad_split": lambda: torch.ops.elas.relu2_sparsify24_backward_expand(g @ wt, packed, None, "masked", m, n),
        "grad_cutlass": lambda: torch.ops.elas.cutlass_grad_relu2_sparse24(g, wt, packed),
    }


def run_shape(m: int, n: int, k: int) -> dict:
    ms = {name: graph_ms(fn) for name, fn in kernel_calls(m, n, k).items()}
    return {"m": m, "n": n, "k": k,
            "cublas": ms["cublas"], "split": ms["split"], "cutlass": ms["cutlass"],
            "speedup": ms["split"] / ms["cutlass"],
            "grad_cublas": ms["grad_cublas"], "grad_split": ms["grad_split"], "grad_cutlass": ms["grad_cutlass"],
            "grad_speedup": ms["grad_split"] / ms["grad_cutlass"],
            "tflops_cutlass": 2 * m * n * k / ms["cutlass"] / 1e9}


def main(argv=None) -> None:
    csv_path, shapes = cutlass_shapes_cli("bench_cutlass", __doc__, DEFAULT_SHAPES, argv)
    rows = [run_shape(*s) for s in shapes]
    write_csv(csv_path, rows, device_meta())
    cols = ["cublas", "split", "cutlass", "speedup",
            "grad_cublas", "grad_split", "grad_cutlass", "grad_speedup"]
    print(f"{'M x N x K':>18} " + " ".join(f"{c:>12}" for c in cols))
    for r in rows:
        print(f"{r['m']}x{r['n']}x{r['k']:<6} " + " ".join(f"{r[c]:12.4f}" for c in cols))


if __name__ == "__main__":
    main()
