"""The FFN blocks the ``ffn`` suite compares, at one shape (d, F, r).

- ``full``: LLaMA's full-rank SwiGLU MLP, hidden width F / 1.5 rounded to 128 (about as many
  parameters as a gate-less MLP of width F).
- ``lowrank``: that MLP rewritten by ``elas_compile.apply(ELASConfig(sparsity=False))``: the dense
  low-rank ReLU² FFN of width F, rank r (the baseline of every ratio).
- ``elas-<backward>-<kernels>``: the same rewrite with 2:4 sparsity on from the first step,
  ``ELASConfig(backward=..., kernels=...)``, for each backend that can run here (others are
  listed with the reason they cannot).
- ``lowrank-torch24``: a hand-written low-rank ReLU² FFN whose activation goes through torch's
  off-the-shelf 2:4 subclass (``SparseSemiStructuredTensorCUSPARSELT.prune_dense_static_sort``,
  straight-through backward): what 2:4 activation sparsity costs without elas_compile.

Every ELAS-built FFN goes through ``apply`` on a small module holding one SwiGLU MLP: the rewrite
path a user's model takes.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

import elas_compile
from elas_compile.backends import resolve_backend

DTYPE = torch.bfloat16
ELAS_KERNELS = ("cutlass", "triton", "triton-sparse-dx", "reference")
BACKWARDS = ("masked", "ste", "masked-tokens24")
VARIANT_NAMES = ("full", "lowrank", "lowrank-torch24", *(f"elas-{b}-{k}" for b in BACKWARDS for k in ELAS_KERNELS))


class SwiGLU(nn.Module):
    """LLaMA's MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, d: int, f: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _TorchSemiStructured(torch.autograd.Function):
    """torch's 2:4 subclass on the activation; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, y):
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT

        return SparseSemiStructuredTensorCUSPARSELT.prune_dense_static_sort(y)

    @staticmethod
    def backward(ctx, grad):
        return grad


class LowRankTorch24(nn.Module):
    """Low-rank ReLU² FFN, U(V x) factors, with torch's 2:4 subclass between up and down."""

    def __init__(self, d: int, f: int, r: int) -> None:
        super().__init__()
        self.up_v, self.up_u = nn.Linear(d, r, bias=False), nn.Linear(r, f, bias=False)
        self.down_v, self.down_u = nn.Linear(f, r, bias=False), nn.Linear(r, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.up_u(self.up_v(x))) ** 2
        return self.down_u(self.down_v(_TorchSemiStructured.apply(y)))


def swiglu_width(f: int) -> int:
    return max(128, round(f / 1.5 / 128) * 128)


def _elas_config(f: int, r: int, **kwargs) -> elas_compile.ELASConfig:
    """The config that turns SwiGLU(d, swiglu_width(F)) into an FFN of width exactly F."""
    return elas_compile.ELASConfig(rank=r, ffn_width_multiplier=f / swiglu_width(f), dense_warmup_steps=0, **kwargs)


def elas_ffn(d: int, f: int, r: int, **kwargs) -> nn.Module:
    holder = nn.Sequential(SwiGLU(d, swiglu_width(f)))
    elas_compile.apply(holder, _elas_config(f, r, **kwargs))
    return holder


class Variant(NamedTuple):
    name: str
    build: Callable[[], nn.Module]
    kernels: Optional[str] = None  # ELASConfig.kernels of a 2:4 ELAS variant
    backward: Optional[str] = None
    blocker: Optional[str] = None  # why it cannot run here (None: it can)
    backend: str = ""  # what computes the FFN middle of a variant that is not a 2:4 ELAS one


def variants(d: int, f: int, r: int, device: torch.device) -> list[Variant]:
    """Every variant at this shape, in table order; those that cannot run here carry a blocker."""
    cuda_only = None if device.type == "cuda" else "needs a CUDA GPU (cuSPARSELt)"
    out = [
        Variant("full", lambda: SwiGLU(d, swiglu_width(f)), backend="dense"),
        Variant("lowrank", lambda: elas_ffn(d, f, r, sparsity=False), backend="dense"),
        Variant("lowrank-torch24", lambda: LowRankTorch24(d, f, r), blocker=cuda_only, backend="torch 2:4 subclass"),
    ]
    for backward in BACKWARDS:
        for kernels in ELAS_KERNELS:
            res = resolve_backend(kernels, device=device, dtype=DTYPE, width=f, rank_in=r, rank_out=r, mode=backward)
            blocker = None if res.backend == kernels else res.reason
            out.append(Variant(f"elas-{backward}-{kernels}",
                               lambda b=backward, k=kernels: elas_ffn(d, f, r, backward=b, kernels=k),
                               kernels=kernels, backward=backward, blocker=blocker))
    return out


def resolved_kernels(module: nn.Module) -> list[dict]:
    """What ``elas_compile.explain`` says each 2:4 MLP of ``module`` will run, in bf16."""
    if not elas_compile.elas_mlps(module):
        return []
    report = elas_compile.explain(module, dtype=DTYPE)
    return [{"mlp": path, "backend": res.backend, "reason": res.reason} for path, res in report.backends]
