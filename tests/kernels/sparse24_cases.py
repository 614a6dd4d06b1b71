"""Input generators shared by the kernel tests (CPU tensors)."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

DTYPES = [torch.bfloat16, torch.float16]


def make(kind: str, rows: int, cols: int, dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        x = torch.randn(rows, cols, generator=g)
    elif kind == "ties":
        x = torch.randint(-3, 4, (rows, cols), generator=g).float() * 0.5
        x = torch.where(torch.rand(rows, cols, generator=g) < 0.5, x, -x)  # includes -0.0
    elif kind == "sparse":
        x = torch.randn(rows, cols, generator=g) * (torch.rand(rows, cols, generator=g) < 0.3)
    elif kind == "zeros":
        x = torch.zeros(rows, cols)
        x[::7] = torch.randn(cols, generator=g)
    elif kind == "scales":
        e = torch.randint(-20, 21, (rows, 1), generator=g).float()
        x = torch.randn(rows, cols, generator=g) * 10.0**e
        if dtype == torch.float16:
            x = x.clamp(-200, 200)
    else:
        raise ValueError(kind)
    return x.to(dtype)


KINDS = ["normal", "ties", "sparse", "zeros", "scales"]
shapes = st.tuples(st.sampled_from([64, 128, 192]), st.sampled_from([64, 128, 192, 256]))


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int16)


def gemm_operands(m: int, k: int, n: int, dtype, seed: int, device: str = "cpu"):
    """(a, b) for the rank-k GEMM tests: a ~ N(0, 1) of m x k, b of n x k scaled by 1/sqrt(k)."""
    g = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(m, k, device=device, generator=g).to(dtype)
    return a, (torch.randn(n, k, device=device, generator=g) / k**0.5).to(dtype)


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| in float64."""
    return ((x.double() - ref.double()).norm() / ref.double().norm()).item()
