"""The FFN variants compared in bench_ffn.py (the first three as in ../shared/reference/ffn_anchor_bench.py)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import elas_compile


class SwiGLU(nn.Module):
    """Full-rank SwiGLU (LLaMA's MLP)."""

    def __init__(self, d, f):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = (nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False),
                                                        nn.Linear(f, d, bias=False))

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _TorchSemiStructured(torch.autograd.Function):
    """torch's off-the-shelf 2:4 subclass on the activation, straight-through backward."""

    @staticmethod
    def forward(ctx, y):
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as CS

        return CS.prune_dense_static_sort(y)

    @staticmethod
    def backward(ctx, g):
        return g


class LowRankReLU2(nn.Module):
    """Low-rank ReLU² FFN written by hand: dense, or with torch's 2:4 subclass."""

    def __init__(self, d, f, r, torch24=False):
        super().__init__()
        self.torch24 = torch24
        self.uv, self.uu = nn.Linear(d, r, bias=False), nn.Linear(r, f, bias=False)
        self.dv, self.du = nn.Linear(f, r, bias=False), nn.Linear(r, d, bias=False)

    def forward(self, x):
        y = F.relu(self.uu(self.uv(x))) ** 2
        if self.torch24:
            y = _TorchSemiStructured.apply(y)
        return self.du(self.dv(y))


def elas_ffn(d, f_swiglu, r, backward, sparsity=True):
    """The product path: a SwiGLU MLP rewritten by elas_compile.apply (2:4 active from step 0)."""
    holder = nn.Sequential(SwiGLU(d, f_swiglu))
    cfg = elas_compile.ELASConfig(rank=r, backward=backward, dense_warmup_steps=0, sparsity=sparsity)
    elas_compile.apply(holder, cfg)
    return holder


def variants(d, f_swiglu, r):
    f_elas = elas_compile.ELASConfig().ffn_width(f_swiglu)
    return {
        "swiglu_fullrank": lambda: SwiGLU(d, f_swiglu),
        "lowrank_relu2_dense": lambda: LowRankReLU2(d, f_elas, r),
        "lowrank_relu2_torch24": lambda: LowRankReLU2(d, f_elas, r, torch24=True),
        "elas_dense_lowrank": lambda: elas_ffn(d, f_swiglu, r, "masked", sparsity=False),
        "elas_masked": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_masked_gemm_epilogue": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_masked_up_epilogue": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_masked_grad_epilogue": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_masked_dv_kernel": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_masked_triton": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_masked_cutlass_up": lambda: elas_ffn(d, f_swiglu, r, "masked"),
        "elas_ste": lambda: elas_ffn(d, f_swiglu, r, "ste"),
    }


# environment a variant runs under (read when the ELAS op is traced)
# (experimental kernels, off by default: slower than cuBLAS + the separate 2:4 kernels, measured)
ENV = {"elas_masked_gemm_epilogue": {"ELAS_FUSED_GEMM": "1"}, "elas_masked_up_epilogue": {"ELAS_FUSED_GEMM": "up"},
       "elas_masked_grad_epilogue": {"ELAS_FUSED_GEMM": "grad"}, "elas_masked_dv_kernel": {"ELAS_DV_KERNEL": "1"},
       # the CUTLASS epilogue kernels (kernels/cutlass_ext): elas_masked uses both where built
       "elas_masked_triton": {"ELAS_CUTLASS": "0"}, "elas_masked_cutlass_up": {"ELAS_CUTLASS": "up"}}
