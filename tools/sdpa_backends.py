"""Causal attention at the training shapes, per SDPA backend (GPU): forward and forward+backward.

torch picks cuDNN's attention on Hopper first; this times it against FlashAttention-2 and the
memory-efficient kernel at LLaMA preset shapes (64 x 256 tokens, head dim 64 or 128), CUDA graphs.

    python -m tools.sdpa_backends --csv sdpa.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.outputs import write_csv
from benchmarks.timing import graph_ms

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}
SHAPES = {"350m": (64, 16, 256, 64), "1b": (64, 32, 256, 64), "130m": (64, 12, 256, 64)}


def time_backend(backend, b, h, s, d):
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)

    def fwd():
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def fwd_bwd():
        torch.autograd.grad(fwd(), (q, k, v), g)

    return graph_ms(fwd), graph_ms(fwd_bwd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--csv", default="sdpa.csv")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("sdpa_backends needs a CUDA GPU")
    rows = []
    for name in args.shapes:
        b, h, s, d = SHAPES[name]
        for label, backend in BACKENDS.items():
            try:
                f, fb = time_backend(backend, b, h, s, d)
            except RuntimeError as e:  # a backend that cannot run this shape
                print(f"{name} {label}: {str(e).splitlines()[0][:100]}")
                continue
            rows.append({"preset": name, "shape": f"{b}x{h}x{s}x{d}", "backend": label, "fwd_ms": f, "fwd_bwd_ms": fb})
    write_csv(Path(args.csv), rows, [])
    print(f"wrote {args.csv} ({torch.cuda.get_device_name()}, torch {torch.__version__})")
    print(f"{'preset':<6} {'b x h x s x d':<16} {'backend':<10} {'fwd ms':>8} {'fwd+bwd ms':>11}")
    for r in rows:
        print(f"{r['preset']:<6} {r['shape']:<16} {r['backend']:<10} {r['fwd_ms']:>8.4f} {r['fwd_bwd_ms']:>11.4f}")


if __name__ == "__main__":
    main()
