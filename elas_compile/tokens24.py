"""Weight gradients with 2:4 along tokens: the backward mode ``masked-tokens24`` on the fused
backends.

A weight gradient of the FFN middle reduces over tokens: dVdownᵀ = Sᵀ·g and dUup = dyᵀ·h, with
``a`` = S or dy (tokens x F). After relu² most feature columns hold at most 2 nonzeros in most
groups of 4 consecutive tokens, so aᵀ is close to 2:4 along tokens. :func:`weight_grad` computes
aᵀ·b as

1. one Triton pass (``elas::tokens24_compress``) writes aᵀ 2:4 along tokens in cuSPARSELt's
   compressed layout (the two largest |values| of each group of 4 tokens: exact wherever a group
   holds at most 2 nonzeros) and counts per feature the nonzeros that drops;
2. the sparse GEMM ``elas::cslt_mm(aᵀ, b)`` (sparse operand first);
3. the ``dense_fraction`` of columns with the most dropped nonzeros get their rows of the result
   from a dense GEMM over those columns alone.

The pure-PyTorch reference of the same function is ``kernels.reference.tokens24_weight_grad``
(the reference backend and the CPU); both select the same columns (``reference.dense_columns``).
Shapes the compressed layout does not take (tokens or features not multiples of 64: the fused op
pads tokens, so only direct callers meet this) run the reference, with one warning.
"""
from __future__ import annotations

import torch

from elas_compile import cusparselt  # noqa: F401  (registers elas::cslt_mm)
from elas_compile.diagnostics import warn_once
from elas_compile.kernels import reference
from elas_compile.kernels.cslt_layout import cslt_shape_ok


def weight_grad(a: torch.Tensor, b: torch.Tensor, dense_fraction: float) -> torch.Tensor:
    """``aᵀ·b`` (F x r) with ``a`` (M x F) 2:4 along tokens except its densest ``dense_fraction``
    of columns; the result has ``b``'s dtype."""
    m, f = a.shape
    if not cslt_shape_ok(f, m, a.dtype, device=a.device if a.is_cuda else None):
        warn_once(f"masked-tokens24 weight gradient of a {m} x {f} {a.dtype} operand: the sparse GEMM needs tokens and "
                  "features multiples of 64 in bf16/fp16 (and cuSPARSELt's verified layout); running the pure-PyTorch "
                  "reference (same result, dense GEMM)")
        return reference.tokens24_weight_grad(a, b, dense_fraction)
    packed, dropped = torch.ops.elas.tokens24_compress(a)
    out = torch.ops.elas.cslt_mm(packed, b, f, m)
    dense = reference.dense_columns(dropped, dense_fraction)
    if dense.numel():
        out = out.index_copy(0, dense, a.index_select(1, dense).t() @ b)
    return out
