"""Input generators shared by the kernel tests (CPU tensors), and the checks the GEMM tests share."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from elas_compile.kernels import cslt_layout as L

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


def assert_up_gemm(packed: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, note=None) -> None:
    """An up GEMM's outputs: y = a @ b^T within 4e-3 of the float64 product, and ``packed`` the
    reference relu² + 2:4 compression of that y, bit for bit."""
    assert rel_err(y, a.double() @ b.double().t()) < 4e-3, note
    assert torch.equal(bits(packed), bits(L.relu2_sparsify24_compress_reference(y))), note


def grad_reference(g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor, y, mode: str) -> torch.Tensor:
    """dy of the dS = g @ w^T GEMM by the reference backward rule (``y``: the pre-activation, ste)."""
    return L.relu2_sparsify24_backward_reference(g @ w.t(), packed, y, mode, g.shape[0], w.shape[0])


def assert_up_epilogue(packed: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """Interpreter runs: y = a @ b^T with one rounding, and ``packed`` the reference compression
    of that y, bit for bit."""
    ref_y = a.double() @ b.double().t()
    assert ((y.double() - ref_y).abs() <= 2 * 2.0**-8 * ref_y.abs() + 1e-3).all()  # one rounding
    assert torch.equal(bits(packed), bits(L.relu2_sparsify24_compress_reference(y)))


def assert_grad_epilogue(d: torch.Tensor, g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor, y, mode: str) -> None:
    """Interpreter runs: dy from dS = g @ w (w: k x n) as the reference backward gives it on the
    rounded product (the kernel's product may round differently in a few places)."""
    ds = (g.float() @ w.float()).to(g.dtype)
    ref = L.relu2_sparsify24_backward_reference(ds, packed, y, mode, g.shape[0], w.shape[1])
    assert (d == ref).float().mean() > 0.99
    torch.testing.assert_close(d.float(), ref.float(), rtol=2e-2, atol=1e-4)
